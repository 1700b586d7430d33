import { randomUUID } from 'node:crypto';
import { mkdir, open, readFile, readdir, rename, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { sha256Hex } from '../../contract/hashing.ts';
import { MODEL_NAME, isVersionName } from '../../contract/model-names.ts';
import { HISTORY_FILE, METADATA_FILE, MODEL_FILE, PRODUCTION_DIR, STAGING_DIR, modelPath, versionPath } from '../../contract/store-layout.ts';
import { ServiceError } from '../errors.ts';
import type { ModelInterface } from '../inference/model-interface.ts';
import type { ModelSignature } from '../inference/tensor.ts';
import { exists, syncDir, writeFileDurably } from './durable-fs.ts';

// The model store on disk (contract/store-layout.ts). A version is written whole into a staging
// folder and renamed into place, so nothing half written is ever listed or loaded. The production
// version is the last promoted (or rolled back) one in the history, else the first one stored.

export interface VersionMetadata {
  name: string;
  version: string;
  sha256: string;
  sizeBytes: number;
  created: string;
  features: string[];
  signature: ModelSignature;
  interface: ModelInterface;
  metadata: Record<string, unknown>;
}

export type HistoryEvent = {
  time: string;
  /** rollout_*: a standalone canary or shadow of the version (service/serving/rollouts.ts); promoted when it succeeds. */
  event: 'uploaded' | 'promoted' | 'rolled_back' | 'deleted' | 'rollout_started' | 'rollout_rolled_back';
  version: string;
  /** The production version before a promote or rollback. */
  previous?: string;
  /** What a rollout was against, or why it ended. */
  detail?: string;
};

const STALE_STAGING_MS = 60 * 60 * 1000;

export class ModelStore {
  readonly root: string;
  private readonly locks = new Map<string, Promise<unknown>>();

  constructor(root: string) {
    this.root = root;
  }

  async init(): Promise<void> {
    await mkdir(join(this.root, PRODUCTION_DIR), { recursive: true });
    await mkdir(join(this.root, STAGING_DIR), { recursive: true });
    // Leftovers of writes a crash interrupted are never listed; they are removed once old. Young
    // ones may be another writer's (replicas and import Jobs share the store in Kubernetes).
    for (const entry of await readdir(join(this.root, STAGING_DIR))) {
      const path = join(this.root, STAGING_DIR, entry);
      const { mtimeMs } = await stat(path).catch(() => ({ mtimeMs: Date.now() }));
      if (Date.now() - mtimeMs > STALE_STAGING_MS) await rm(path, { recursive: true, force: true });
    }
  }

  modelDir(name: string): string {
    return join(this.root, modelPath(name));
  }

  versionDir(name: string, version: string): string {
    return join(this.root, versionPath(name, version));
  }

  /** Runs fn with the model's mutations serialised, so history lines and renames never interleave. */
  withLock<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(name) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const tail = next.catch(() => undefined);
    this.locks.set(name, tail);
    void tail.then(() => {
      if (this.locks.get(name) === tail) this.locks.delete(name);
    });
    return next;
  }

  async listModels(): Promise<string[]> {
    const entries = await readdir(join(this.root, PRODUCTION_DIR), { withFileTypes: true }).catch(() => []);
    const names: string[] = [];
    for (const e of entries) if (e.isDirectory() && MODEL_NAME.test(e.name) && (await this.listVersions(e.name)).length > 0) names.push(e.name);
    return names.sort();
  }

  /** Versions of a model, oldest first (by creation time). */
  async listVersions(name: string): Promise<VersionMetadata[]> {
    const entries = await readdir(this.modelDir(name), { withFileTypes: true }).catch(() => []);
    const versions: VersionMetadata[] = [];
    for (const e of entries) {
      if (!e.isDirectory() || !isVersionName(e.name)) continue;
      const meta = await this.readMetadata(name, e.name);
      if (meta) versions.push(meta);
    }
    return versions.sort((a, b) => a.created.localeCompare(b.created) || a.version.localeCompare(b.version));
  }

  async readMetadata(name: string, version: string): Promise<VersionMetadata | undefined> {
    try {
      return JSON.parse(await readFile(join(this.versionDir(name, version), METADATA_FILE), 'utf8')) as VersionMetadata;
    } catch {
      return undefined;
    }
  }

  async hasVersion(name: string, version: string): Promise<boolean> {
    return exists(join(this.versionDir(name, version), METADATA_FILE));
  }

  /** Reads a version's bytes and checks them against the recorded sha256. */
  async readModel(meta: VersionMetadata): Promise<Uint8Array> {
    const bytes = await readFile(join(this.versionDir(meta.name, meta.version), MODEL_FILE));
    const actual = sha256Hex(bytes);
    if (actual !== meta.sha256)
      throw new ServiceError('STORE_CORRUPT', `model ${meta.name}@${meta.version} on disk has sha256 ${actual}, expected ${meta.sha256}`);
    return bytes;
  }

  /** Writes a new version atomically; 409 when it exists. Caller holds the model's lock. */
  async writeVersion(meta: VersionMetadata, bytes: Uint8Array): Promise<void> {
    const target = this.versionDir(meta.name, meta.version);
    if (await exists(target)) throw new ServiceError('VERSION_EXISTS', `model ${meta.name} already has version ${meta.version}; upload a new version instead`);
    const staging = join(this.root, STAGING_DIR, randomUUID());
    await mkdir(staging, { recursive: true });
    try {
      await writeFileDurably(join(staging, MODEL_FILE), bytes);
      await writeFileDurably(join(staging, METADATA_FILE), `${JSON.stringify(meta, null, 2)}\n`);
      await syncDir(staging);
      await mkdir(this.modelDir(meta.name), { recursive: true });
      await rename(staging, target);
      await syncDir(dirname(target));
    } catch (err) {
      await rm(staging, { recursive: true, force: true });
      if ((err as NodeJS.ErrnoException).code === 'ENOTEMPTY' || (err as NodeJS.ErrnoException).code === 'EEXIST')
        throw new ServiceError('VERSION_EXISTS', `model ${meta.name} already has version ${meta.version}; upload a new version instead`);
      throw err;
    }
    await this.appendHistory(meta.name, { time: meta.created, event: 'uploaded', version: meta.version });
  }

  /** Removes a version: renamed out of the listing first, then deleted. Caller holds the lock. */
  async deleteVersion(name: string, version: string): Promise<void> {
    const trash = join(this.root, STAGING_DIR, `deleted-${randomUUID()}`);
    await rename(this.versionDir(name, version), trash);
    await syncDir(this.modelDir(name));
    await rm(trash, { recursive: true, force: true });
    await this.appendHistory(name, { time: new Date().toISOString(), event: 'deleted', version });
  }

  async appendHistory(name: string, event: HistoryEvent): Promise<void> {
    await mkdir(this.modelDir(name), { recursive: true });
    const fh = await open(join(this.modelDir(name), HISTORY_FILE), 'a');
    try {
      await fh.write(`${JSON.stringify(event)}\n`);
      await fh.sync();
    } finally {
      await fh.close();
    }
  }

  async history(name: string): Promise<HistoryEvent[]> {
    const text = await readFile(join(this.modelDir(name), HISTORY_FILE), 'utf8').catch(() => '');
    const events: HistoryEvent[] = [];
    for (const line of text.split('\n')) {
      if (!line.trim()) continue;
      try {
        events.push(JSON.parse(line) as HistoryEvent);
      } catch {
        // A line cut short by a crash: the event did not happen.
      }
    }
    return events;
  }

  /**
   * The production version: the last one promoted or rolled back to that still exists; before any
   * promote, the first version stored. A model's first upload serves at once, so a crash between
   * storing it and recording its promote leaves it serving, not listed and unserved.
   */
  async productionVersion(name: string, history?: HistoryEvent[]): Promise<string | undefined> {
    const events = history ?? (await this.history(name));
    for (let i = events.length - 1; i >= 0; i--) {
      const e = events[i]!;
      if ((e.event === 'promoted' || e.event === 'rolled_back') && (await this.hasVersion(name, e.version))) return e.version;
    }
    for (const e of events) if (e.event === 'uploaded' && (await this.hasVersion(name, e.version))) return e.version;
    return (await this.listVersions(name))[0]?.version;
  }
}
