import { chmod, chown, lstat, mkdir, open, readdir, rename, rm, rmdir, stat } from 'node:fs/promises';
import { createReadStream, type Stats } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { Unpack } from 'tar';
import { MODELS_PREFIX, REDIS_PREFIX, checkArchiveModel, modelPrefix, readExactly, verifyArchive, type Manifest, type ManifestFile } from './archive.ts';
import { BackupError, errnoCode } from './errors.ts';
import { syncDir } from '../store/durable-fs.ts';
import { HOLDER_FRESH_MS, storeHolders } from '../store/store-holders.ts';
import { tempId } from './format.ts';

// Restore: verify the whole archive, extract each part into a fresh folder beside its target,
// check every extracted file against the manifest again, then swap the folders in with renames.
// Until the swap nothing live is touched, and a failed swap is undone, so a failed restore leaves
// the store as it was.
//
// A per-model archive (its manifest names the model) replaces only <models-dir>/production/<model>:
// extracted into a folder beside it in production/, checked, then the old model folder renamed
// aside, the new one renamed into place and the old one removed; other models are never touched.

export interface RestoreOptions {
  /** The archive file. */
  archive: string;
  /** MODELS_DIR: `<modelsDir>/production` is replaced (only `<modelsDir>/production/<model>` for a per-model archive). */
  modelsDir: string;
  /** The model the archive must hold (a per-model archive of it); refused otherwise, before anything is written. */
  model?: string | undefined;
  /** The Redis data folder; restored only when given and the archive holds Redis data. */
  redisDir?: string | undefined;
  /**
   * How a folder is swapped. 'auto' (default): rename the whole folder, or, when it is a mount
   * point or its parent is not writable, rename its entries one by one ('contents').
   */
  swap?: 'auto' | 'contents';
  /** Stops the restore (nothing changed) if aborted before the swap; the swap itself always completes. */
  signal?: AbortSignal | undefined;
}

interface RestoredPart {
  name: 'models' | 'redis';
  target: string;
  files: number;
  bytes: number;
  swap: 'rename' | 'contents';
}

export interface RestoreResult {
  archive: string;
  created: string;
  /** The model of a per-model archive (only its folder was replaced). */
  model?: string;
  restored: RestoredPart[];
  /** Parts left as they were, and why. */
  notes: string[];
}

interface Part {
  name: 'models' | 'redis';
  prefix: string;
  target: string;
  files: ManifestFile[];
  swap: 'rename' | 'contents';
  staging: string;
  /** Where the old contents go during the swap. */
  old: string;
  targetStat: Stats | undefined;
  bytes: number;
}

const NO_WRITE = new Set(['EACCES', 'EPERM', 'EROFS']);

async function prepare(name: Part['name'], prefix: string, target: string, manifest: Manifest, forceContents: boolean): Promise<Part> {
  const parent = dirname(target);
  const targetStat = await lstat(target).catch((err: unknown) => {
    if (errnoCode(err) === 'ENOENT') return undefined;
    throw new BackupError('RESTORE', `cannot read ${target}: ${(err as Error).message}`, { cause: err });
  });
  if (targetStat?.isSymbolicLink()) throw new BackupError('RESTORE', `${target} is a symbolic link; point the option at the real folder`);
  if (targetStat && !targetStat.isDirectory()) throw new BackupError('RESTORE', `${target} exists and is not a folder`);
  await mkdir(parent, { recursive: true }).catch((err: unknown) => {
    throw new BackupError('RESTORE', `cannot create ${parent}: ${(err as Error).message}`, { cause: err });
  });
  const id = tempId();
  let swap: Part['swap'] = forceContents ? 'contents' : 'rename';
  // A mount point cannot be renamed: swap what is inside it instead.
  if (swap === 'rename' && targetStat && (await stat(parent)).dev !== targetStat.dev) swap = 'contents';
  let staging = join(parent, `.analytics-restore-${id}`);
  if (swap === 'rename') {
    try {
      await mkdir(staging, { mode: 0o700 });
    } catch (err) {
      if (!targetStat || !NO_WRITE.has(errnoCode(err) ?? ''))
        throw new BackupError('RESTORE', `cannot create a folder beside ${target}: ${(err as Error).message}`, { cause: err });
      swap = 'contents';
    }
  }
  if (swap === 'contents') {
    if (!targetStat) await mkdir(target, { recursive: true });
    staging = join(target, `.analytics-restore-${id}`);
    await mkdir(staging, { mode: 0o700 }).catch((err: unknown) => {
      throw new BackupError('RESTORE', `cannot create a folder in ${target}: ${(err as Error).message}`, { cause: err });
    });
  }
  const old = swap === 'rename' ? join(parent, `.analytics-old-${id}`) : join(target, `.analytics-old-${id}`);
  const files = manifest.files.filter((f) => f.path.startsWith(`${prefix}/`));
  return { name, prefix, target, files, swap, staging, old, targetStat, bytes: files.reduce((n, f) => n + f.size, 0) };
}

/** Extracts the part's entries (and nothing else) from the archive into its staging folder. */
async function extractPart(archive: string, part: Part): Promise<void> {
  const depth = part.prefix.split('/').length;
  try {
    await new Promise<void>((resolve, reject) => {
      const unpack = new Unpack({
        cwd: part.staging,
        strict: true,
        strip: depth,
        filter: (path) => path.startsWith(`${part.prefix}/`) && path.replace(/\/$/, '') !== part.prefix,
      });
      // Small reads: tar.x's own 16 MiB reads inflate into hundreds of MiB of buffered data.
      const input = createReadStream(archive, { highWaterMark: 64 * 1024 });
      unpack.on('error', (err: unknown) => {
        input.destroy();
        reject(err);
      });
      unpack.on('close', () => resolve());
      input.on('error', reject);
      input.pipe(unpack as unknown as NodeJS.WritableStream);
    });
  } catch (err) {
    const code = errnoCode(err);
    if (code === 'ENOSPC' || code === 'EDQUOT')
      throw new BackupError('NO_SPACE', `no space left while restoring into ${part.target} (${code}); nothing was changed`, { cause: err });
    throw new BackupError('CORRUPT', `extracting ${part.prefix}/ from ${archive} failed: ${(err as Error).message}; nothing was changed`, { cause: err });
  }
}

/** Checks the extracted tree against the manifest once more (and fsyncs it): only listed files, all of them, same bytes. */
async function checkStaged(part: Part): Promise<void> {
  const expected = new Map(part.files.map((f) => [f.path.slice(part.prefix.length + 1), f]));
  const walk = async (dir: string, rel: string): Promise<void> => {
    for (const name of await readdir(dir)) {
      const absolute = join(dir, name);
      const relPath = rel ? `${rel}/${name}` : name;
      const st = await lstat(absolute);
      if (st.isDirectory()) {
        await walk(absolute, relPath);
        continue;
      }
      const listed = expected.get(relPath);
      if (!st.isFile()) throw new BackupError('UNSAFE', `extracting produced ${part.prefix}/${relPath}, which is not a regular file; nothing was changed`);
      if (!listed) throw new BackupError('CORRUPT', `extracting produced ${part.prefix}/${relPath}, which is not in the manifest; nothing was changed`);
      const fh = await open(absolute, 'r');
      try {
        if ((await fh.stat()).size !== listed.size) throw new BackupError('CHECKSUM', `extracted ${listed.path} has the wrong size; nothing was changed`);
        if ((await readExactly(fh, listed.size)) !== listed.sha256)
          throw new BackupError('CHECKSUM', `checksum mismatch for extracted ${listed.path}; nothing was changed`);
        await fh.sync();
      } finally {
        await fh.close();
      }
      expected.delete(relPath);
    }
    await syncDir(dir);
  };
  await walk(part.staging, '');
  const missing = expected.values().next().value;
  if (missing) throw new BackupError('CORRUPT', `${missing.path} is in the manifest but was not extracted; nothing was changed`);
  // The new folder takes the place (and so the permissions and owner) of the old one.
  if (part.swap === 'rename') {
    await chmod(part.staging, part.targetStat ? part.targetStat.mode & 0o7777 : 0o755);
    if (part.targetStat && process.getuid?.() === 0) await chown(part.staging, part.targetStat.uid, part.targetStat.gid);
  }
}

/** Swaps the staged folder in; returns how to undo it. */
async function swapIn(part: Part): Promise<() => Promise<void>> {
  if (part.swap === 'rename') {
    const parent = dirname(part.target);
    const hadOld = part.targetStat !== undefined;
    if (hadOld) await rename(part.target, part.old);
    try {
      await rename(part.staging, part.target);
    } catch (err) {
      if (hadOld) await rename(part.old, part.target);
      throw err;
    }
    await syncDir(parent);
    return async () => {
      await rename(part.target, part.staging);
      if (hadOld) await rename(part.old, part.target);
      await syncDir(parent);
    };
  }
  // contents: move each entry of the target into `old`, then each staged entry into the target.
  const skip = new Set([basename(part.staging), basename(part.old)]);
  await mkdir(part.old, { mode: 0o700 });
  const moved: string[] = [];
  const placed: string[] = [];
  const undo = async () => {
    for (const n of placed.reverse()) await rename(join(part.target, n), join(part.staging, n));
    for (const n of moved.reverse()) await rename(join(part.old, n), join(part.target, n));
    await rmdir(part.old).catch(() => undefined);
    await syncDir(part.target);
  };
  try {
    for (const n of await readdir(part.target)) {
      if (skip.has(n) || n.startsWith('.analytics-')) continue;
      await rename(join(part.target, n), join(part.old, n));
      moved.push(n);
    }
    for (const n of await readdir(part.staging)) {
      await rename(join(part.staging, n), join(part.target, n));
      placed.push(n);
    }
    await syncDir(part.target);
  } catch (err) {
    await undo();
    throw err;
  }
  return undo;
}

/**
 * Restores an archive: the model store's production folder (and the Redis data folder when both
 * the archive and `redisDir` have one). Throws a BackupError, with nothing live changed, when the
 * archive is damaged, unsafe or does not match its manifest, or when the swap fails.
 */
export async function restoreBackup(options: RestoreOptions): Promise<RestoreResult> {
  const archive = resolve(options.archive);
  const holders = await storeHolders(resolve(options.modelsDir));
  if (holders.length > 0)
    throw new BackupError(
      'STORE_IN_USE',
      `the model store ${options.modelsDir} is in use by ${holders.length === 1 ? 'a running service' : `${holders.length} running services`} (${holders
        .map((h) => `${h.name}, seen ${Math.round(h.ageMs / 1000)} s ago`)
        .join(
          '; ',
        )}): it would keep serving what it loaded. Stop ${holders.length === 1 ? 'it' : 'them'} first (in Kubernetes: kubectl scale deployment/analytics-api --replicas=0), restore, then start again; a service killed without stopping is forgotten ${HOLDER_FRESH_MS / 1000} s after it last touched the store`,
    );
  const { manifest } = await verifyArchive(archive); // nothing is written before this passes
  checkArchiveModel(archive, manifest, options.model);
  const notes: string[] = [];
  const production = join(resolve(options.modelsDir), 'production');
  const wanted: Array<[Part['name'], string, string]> = [
    manifest.model === undefined ? ['models', MODELS_PREFIX, production] : ['models', modelPrefix(manifest.model), join(production, manifest.model)],
  ];
  const hasRedis = manifest.sources.some((s) => s.name === 'redis');
  if (hasRedis && options.redisDir) wanted.push(['redis', REDIS_PREFIX, resolve(options.redisDir)]);
  else if (hasRedis) notes.push('the archive holds Redis data, left out: pass --redis-dir or set REDIS_DATA_DIR to restore it');
  else if (options.redisDir) notes.push(`the archive holds no Redis data; ${options.redisDir} was left as it is`);

  const parts: Part[] = [];
  const undos: Array<() => Promise<void>> = [];
  try {
    const checkAborted = () => {
      if (options.signal?.aborted) throw new BackupError('INTERRUPTED', 'interrupted; nothing was changed');
    };
    // Every target is checked and given its staging folder before anything is extracted.
    for (const [name, prefix, target] of wanted) parts.push(await prepare(name, prefix, target, manifest, options.swap === 'contents'));
    for (const part of parts) {
      checkAborted();
      await extractPart(archive, part);
      await checkStaged(part);
    }
    checkAborted();
    for (const part of parts) {
      try {
        undos.push(await swapIn(part));
      } catch (err) {
        throw new BackupError('RESTORE', `swapping the restored folder into ${part.target} failed: ${(err as Error).message}; nothing was changed`, {
          cause: err,
        });
      }
    }
  } catch (err) {
    for (const undo of undos.reverse()) await undo().catch(() => undefined);
    for (const part of parts) await rm(part.staging, { recursive: true, force: true }).catch(() => undefined);
    if (err instanceof BackupError) throw err;
    const code = errnoCode(err);
    if (code === 'ENOSPC' || code === 'EDQUOT')
      throw new BackupError('NO_SPACE', `no space left while restoring (${code}); nothing was changed`, { cause: err });
    throw new BackupError('RESTORE', `restore failed: ${(err as Error).message}; nothing was changed`, { cause: err });
  }
  for (const part of parts) {
    await rm(part.old, { recursive: true, force: true });
    if (part.swap === 'contents') await rm(part.staging, { recursive: true, force: true });
  }
  return {
    archive,
    created: manifest.created,
    ...(manifest.model !== undefined ? { model: manifest.model } : {}),
    restored: parts.map((p) => ({ name: p.name, target: p.target, files: p.files.length, bytes: p.bytes, swap: p.swap })),
    notes,
  };
}
