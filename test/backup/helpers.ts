import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { lstat, mkdtemp, readdir, readFile, readlink, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Header, Pack, ReadEntry } from 'tar';
import { FORMAT, FORMAT_VERSION, MANIFEST_NAME, type Manifest } from '../../service/backup/archive.ts';
import { cli, type CliResult } from '../helpers/cli.ts';

// Shared by the backup tests: temporary folders, running the `analytics-api` CLI, snapshots of
// folder trees, and hand-made archives.

export const ROOT = new URL('../../', import.meta.url).pathname;
export const BIN = join(ROOT, 'bin', 'analytics-api.js');
export const MODELS = join(ROOT, 'models');

/** A fresh temporary folder, removed when the test ends. */
export async function sandbox(t: { after(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'analytics-backup-test-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

const OWN_ENV = ['MODELS_DIR', 'BACKUP_DIR', 'REDIS_DATA_DIR', 'BACKUP_RETENTION_DAYS'];

/** The environment for the CLI: the test's own, minus the backup settings, plus `env`. Redis off unless given. */
export function cliEnv(env: Record<string, string> = {}): NodeJS.ProcessEnv {
  const base: NodeJS.ProcessEnv = { ...process.env };
  for (const k of OWN_ENV) delete base[k];
  return { ...base, REDIS_DATA_DIR: '', ...env };
}

/** Starts `node bin/analytics-api.js …` (the Node running the tests, i.e. Node 24). */
export function startCli(args: string[], env: Record<string, string> = {}, options: SpawnOptions = {}): ChildProcess {
  return spawn(process.execPath, [BIN, ...args], { env: cliEnv(env), stdio: ['ignore', 'pipe', 'pipe'], ...options });
}

/** Runs the CLI to the end: in this process, or (with spawn options, e.g. another uid) as a child killed after 60 s. */
export async function runCli(args: string[], env: Record<string, string> = {}, options?: SpawnOptions): Promise<CliResult> {
  if (!options) return cli(args, cliEnv(env));
  const child = startCli(args, env, { timeout: 60_000, ...options });
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (c: string) => (stdout += c));
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  const [code, signal] = (await once(child, 'close')) as [number | null, NodeJS.Signals | null];
  return { code, signal, stdout, stderr };
}

export const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/**
 * Every path under `dir` with its type, mode, size, mtime and (files) sha256 or (links) target:
 * two equal snapshots mean nothing was created, removed or changed, not even for a moment (folder
 * mtimes change when an entry is added and removed again).
 */
export async function snapshot(dir: string, options: { mtimes?: boolean } = {}): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (abs: string, rel: string) => {
    const st = await lstat(abs);
    const time = options.mtimes === false ? '' : ` mtime=${st.mtimeMs}`;
    if (st.isDirectory()) {
      out[rel || '.'] = `dir mode=${(st.mode & 0o7777).toString(8)}${time}`;
      for (const name of (await readdir(abs)).sort()) await walk(join(abs, name), rel ? `${rel}/${name}` : name);
    } else if (st.isFile()) out[rel] = `file mode=${(st.mode & 0o7777).toString(8)} size=${st.size} sha256=${sha256(await readFile(abs))}${time}`;
    else if (st.isSymbolicLink()) out[rel] = `symlink -> ${await readlink(abs)}`;
    else out[rel] = 'other';
  };
  await walk(dir, '');
  return out;
}

export interface CraftedEntry {
  path: string;
  type?: 'File' | 'Directory' | 'SymbolicLink' | 'Link' | 'CharacterDevice';
  data?: Buffer | string;
  linkpath?: string;
  /** The size written in the header when it must differ from the data. */
  size?: number;
}

/** A manifest listing `files` (with their real sizes and hashes) and `directories`. */
export function manifestFor(files: Array<{ path: string; data: Buffer | string }>, directories: string[] = [], extra: Partial<Manifest> = {}): Manifest {
  const list = files.map((f) => {
    const b = Buffer.from(f.data);
    return { path: f.path, size: b.length, sha256: sha256(b) };
  });
  return {
    format: FORMAT,
    formatVersion: FORMAT_VERSION,
    created: new Date().toISOString(),
    createdBy: 'test',
    sources: [{ name: 'models', path: '/app/models/production', archivePath: 'models/production' }],
    directories,
    files: list,
    totals: { files: list.length, bytes: list.reduce((n, f) => n + f.size, 0) },
    ...extra,
  };
}

/**
 * Writes a tar.gz with exactly these entries, as an attacker or a damaged disk could: absolute
 * paths, "..", links and devices are kept as given (tar's preservePaths).
 */
export async function craftArchive(file: string, entries: CraftedEntry[], manifest?: Manifest | string): Promise<void> {
  const pack = new Pack({ gzip: true, preservePaths: true });
  const done = pipeline(pack as unknown as NodeJS.ReadableStream, createWriteStream(file));
  const all: CraftedEntry[] =
    manifest === undefined ? entries : [{ path: MANIFEST_NAME, data: typeof manifest === 'string' ? manifest : JSON.stringify(manifest) }, ...entries];
  for (const e of all) {
    const type = e.type ?? 'File';
    const data = Buffer.from(e.data ?? '');
    const size = type === 'File' ? (e.size ?? data.length) : 0;
    const entry = new ReadEntry(
      new Header({
        path: e.path,
        type,
        size,
        mode: type === 'Directory' ? 0o755 : 0o644,
        mtime: new Date(),
        uid: 0,
        gid: 0,
        ...(e.linkpath ? { linkpath: e.linkpath } : {}),
      }),
    );
    pack.add(entry);
    const ended = once(entry, 'end');
    if (size) entry.write(data.subarray(0, size));
    entry.end();
    await ended;
  }
  pack.end();
  await done;
}

/** Waits for `predicate` to become true, polling every `everyMs`; fails after `timeoutMs`. */
export async function waitFor(predicate: () => Promise<boolean> | boolean, what: string, timeoutMs = 30_000, everyMs = 5): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** The only line of a CLI's stderr (errors are one line). */
export function oneLineOf(stderr: string): string {
  const lines = stderr.split('\n').filter(Boolean);
  if (lines.length !== 1) throw new Error(`expected one line on stderr, got ${lines.length}:\n${stderr}`);
  return lines[0]!;
}
