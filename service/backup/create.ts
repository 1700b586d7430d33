import { existsSync, type Stats } from 'node:fs';
import { link, lstat, open, readdir, realpath, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { hostname } from 'node:os';
import { basename, isAbsolute, join, relative, resolve } from 'node:path';
import { exists, syncDir } from '../store/durable-fs.ts';
import { serviceVersion } from '../version.ts';
import {
  ArchiveWriter,
  checkEntry,
  entryStat,
  FORMAT,
  FORMAT_VERSION,
  MANIFEST_NAME,
  MODEL_FORMAT_VERSION,
  MODELS_PREFIX,
  REDIS_PREFIX,
  archiveName,
  isModelName,
  modelPrefix,
  partialName,
  readExactly,
  verifyArchive,
  type Manifest,
  type VerifiedArchive,
} from './archive.ts';
import { BackupError, destinationError, errnoCode } from './errors.ts';
import { checkModelName, removeStalePartials } from './list.ts';

// `backup create`: the model store (and the Redis data folder) as one verified tar.gz, written as
// a .partial file and linked into place under its final name only once it is whole.

/** The Redis data folder of the specification, used when it exists and nothing else is configured. */
export const DEFAULT_REDIS_DATA_DIR = '/data/redis';
/**
 * The Redis data folder to back up, from a setting (REDIS_DATA_DIR or --redis-dir): a path, ""
 * for none, or, when unset, the specification's /data/redis if it exists.
 */
export function resolveRedisDataDir(setting: string | undefined): string | undefined {
  if (setting !== undefined) return setting || undefined;
  return existsSync(DEFAULT_REDIS_DATA_DIR) ? DEFAULT_REDIS_DATA_DIR : undefined;
}
/** A file that changes while it is archived restarts the backup, at most this many times in all. */
const ATTEMPTS = 3;

export interface CreateOptions {
  /** The backup folder; must exist and be writable. */
  dest: string;
  /** MODELS_DIR: the store root; `<modelsDir>/production` is archived. */
  modelsDir: string;
  /**
   * The Redis data folder; archived under redis/ when given (for a whole-store archive), or when
   * given together with `includeRedis` (for a per-model archive).
   */
  redisDir?: string | undefined;
  /** Archive only `<modelsDir>/production/<model>` (a per-model archive, named after the model). */
  model?: string | undefined;
  /** With `model`: archive the Redis data folder too (it is left out of per-model archives otherwise). */
  includeRedis?: boolean | undefined;
  now?: () => Date;
  signal?: AbortSignal | undefined;
  /** Called as bytes are read: hashing the sources, writing the archive, reading it back. */
  onProgress?: ((progress: CreateProgress) => void) | undefined;
}

/** How far a backup is: in its phase, files and bytes done of the total (verifying: of the archive's bytes). */
export interface CreateProgress {
  phase: 'hashing' | 'writing' | 'verifying';
  files: number;
  totalFiles: number;
  bytes: number;
  totalBytes: number;
}

export interface CreateResult {
  name: string;
  path: string;
  created: Date;
  sizeBytes: number;
  files: number;
  /** Uncompressed bytes of every archived file. */
  bytes: number;
  durationMs: number;
  sources: Manifest['sources'];
  /** The model of a per-model archive. */
  model?: string;
  /** Things left out (sockets, links, unreadable names), one line each. */
  warnings: string[];
}

interface ScannedFile {
  archivePath: string;
  absolute: string;
  stat: Stats;
  sha256: string;
}

interface Scan {
  directories: Array<{ archivePath: string; stat: Stats }>;
  files: ScannedFile[];
  warnings: string[];
}

function checkAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new BackupError('INTERRUPTED', 'interrupted; the unfinished archive was removed');
}

function kind(st: Stats): string {
  if (st.isSymbolicLink()) return 'symbolic link';
  if (st.isSocket()) return 'socket';
  if (st.isFIFO()) return 'FIFO';
  if (st.isBlockDevice() || st.isCharacterDevice()) return 'device';
  return 'special file';
}

/** Walks a source folder; with `hash`, reads and hashes every file (else only stats them). */
async function scanSource(
  root: string,
  prefix: string,
  scan: Scan,
  signal: AbortSignal | undefined,
  hash = true,
  onRead: (bytes: number, fileDone: boolean) => void = () => {},
): Promise<void> {
  const walk = async (dir: string, rel: string): Promise<void> => {
    let names: string[];
    try {
      names = (await readdir(dir)).sort();
    } catch (err) {
      if (rel && errnoCode(err) === 'ENOENT') return; // removed meanwhile (a deleted version)
      throw new BackupError('SOURCE', `cannot read ${dir}: ${(err as Error).message}`, { cause: err });
    }
    for (const name of names) {
      checkAborted(signal);
      // Left behind by an interrupted restore that swapped folder contents (restore.ts).
      if (!rel && name.startsWith('.analytics-')) continue;
      const absolute = join(dir, name);
      const relPath = rel ? `${rel}/${name}` : name;
      const archivePath = `${prefix}/${relPath}`;
      let st: Stats;
      try {
        st = await lstat(absolute);
      } catch (err) {
        if (errnoCode(err) === 'ENOENT') continue;
        throw new BackupError('SOURCE', `cannot read ${absolute}: ${(err as Error).message}`, { cause: err });
      }
      if (!st.isDirectory() && !st.isFile()) {
        scan.warnings.push(`skipped ${absolute}: a ${kind(st)}; only files and folders are backed up`);
        continue;
      }
      try {
        checkEntry(archivePath, st.isDirectory() ? 'Directory' : 'File');
      } catch {
        scan.warnings.push(`skipped ${absolute}: its name cannot be stored safely`);
        continue;
      }
      if (st.isDirectory()) {
        scan.directories.push({ archivePath, stat: st });
        await walk(absolute, relPath);
        continue;
      }
      if (!hash) {
        scan.files.push({ archivePath, absolute, stat: st, sha256: '' });
        continue;
      }
      let fh: FileHandle;
      try {
        fh = await open(absolute, 'r');
      } catch (err) {
        if (errnoCode(err) === 'ENOENT') continue;
        throw new BackupError('SOURCE', `cannot read ${absolute}: ${(err as Error).message}`, { cause: err });
      }
      try {
        const fst = await fh.stat();
        const read = (chunk: Buffer) => {
          checkAborted(signal);
          onRead(chunk.length, false);
        };
        scan.files.push({ archivePath, absolute, stat: fst, sha256: await readExactly(fh, fst.size, read, absolute) });
        onRead(0, true);
      } finally {
        await fh.close();
      }
    }
  };
  await walk(root, '');
}

/**
 * After the archive is written, the folders must still hold the same files (same inodes) and
 * folders: an addition, removal or replacement meanwhile (a model uploaded, an AOF rewrite by
 * Redis) could make the archived set inconsistent, so the backup starts over. Files growing
 * (append-only history, the AOF) is fine: the archive holds them as they were when hashed.
 */
async function checkUnchanged(scan: Scan, sources: Manifest['sources'], signal: AbortSignal | undefined): Promise<void> {
  const again: Scan = { directories: [], files: [], warnings: [] };
  for (const src of sources) await scanSource(src.path, src.archivePath, again, signal, false);
  const key = (archivePath: string, st: Stats) => `${archivePath}\0${st.dev}:${st.ino}`;
  const before = new Set([...scan.directories.map((d) => key(d.archivePath, d.stat)), ...scan.files.map((f) => key(f.archivePath, f.stat))]);
  const after = [...again.directories.map((d) => key(d.archivePath, d.stat)), ...again.files.map((f) => key(f.archivePath, f.stat))];
  const changed = after.find((k) => !before.delete(k)) ?? before.values().next().value;
  if (changed !== undefined) throw new BackupError('SOURCE_CHANGED', `${changed.split('\0')[0]} was added, removed or replaced while the backup ran`);
}

async function sourceFolder(path: string, what: string, hint: string): Promise<string> {
  const absolute = resolve(path);
  const st = await stat(absolute).catch((err: unknown) => {
    throw new BackupError(
      'SOURCE',
      errnoCode(err) === 'ENOENT' ? `${what} ${absolute} does not exist; ${hint}` : `cannot read ${what} ${absolute}: ${(err as Error).message}`,
      { cause: err },
    );
  });
  if (!st.isDirectory()) throw new BackupError('SOURCE', `${what} ${absolute} is not a folder; ${hint}`);
  return absolute;
}

async function writeArchiveFile(
  fh: FileHandle,
  dest: string,
  manifest: Manifest,
  scan: Scan,
  signal: AbortSignal | undefined,
  onRead: (bytes: number, fileDone: boolean) => void,
): Promise<void> {
  // flush: the stream fsyncs before it closes the handle, and the pipeline ends after both.
  const writer = new ArchiveWriter(fh.createWriteStream({ flush: true }));
  try {
    const manifestBytes = Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`);
    const now = new Date(manifest.created);
    await writer.addFile(
      MANIFEST_NAME,
      manifestBytes.length,
      { mode: 0o644, mtime: now, uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 },
      (write) => write(manifestBytes),
    );
    for (const d of scan.directories) {
      checkAborted(signal);
      await writer.addDirectory(d.archivePath, entryStat(d.stat));
    }
    for (const f of scan.files) {
      checkAborted(signal);
      await writer.addFile(f.archivePath, f.stat.size, entryStat(f.stat), async (write) => {
        let fh2: FileHandle;
        try {
          fh2 = await open(f.absolute, 'r');
        } catch (err) {
          throw new BackupError('SOURCE_CHANGED', `${f.absolute} disappeared while it was being backed up`, { cause: err });
        }
        try {
          const st = await fh2.stat();
          if (st.ino !== f.stat.ino || st.dev !== f.stat.dev)
            throw new BackupError('SOURCE_CHANGED', `${f.absolute} was replaced while it was being backed up`);
          const sha = await readExactly(
            fh2,
            f.stat.size,
            async (chunk) => {
              await write(chunk);
              onRead(chunk.length, false);
            },
            f.absolute,
          );
          onRead(0, true);
          if (sha !== f.sha256) throw new BackupError('SOURCE_CHANGED', `${f.absolute} changed while it was being backed up`);
        } catch (err) {
          if (err instanceof BackupError || writer.outputError !== undefined) throw err;
          throw new BackupError('SOURCE', `cannot read ${f.absolute}: ${(err as Error).message}`, { cause: err });
        } finally {
          await fh2.close();
        }
      });
    }
    await writer.finish();
  } catch (err) {
    writer.abort(err);
    if (writer.outputError !== undefined) throw destinationError(writer.outputError, dest);
    throw err;
  }
}

/** Counts a backup's phases for `onProgress`; without it, counts nothing (and walks nothing in advance). */
async function progressOf(options: CreateOptions, sources: Manifest['sources']) {
  const report = options.onProgress;
  let totalFiles = 0;
  let totalBytes = 0;
  if (report) {
    // The totals for hashing, from a walk that only stats; the manifest's replace them for writing.
    const planned: Scan = { directories: [], files: [], warnings: [] };
    for (const src of sources) await scanSource(src.path, src.archivePath, planned, options.signal, false);
    totalFiles = planned.files.length;
    totalBytes = planned.files.reduce((n, f) => n + f.stat.size, 0);
  }
  return {
    totals(files: number, bytes: number) {
      totalFiles = files;
      totalBytes = bytes;
    },
    counter(phase: 'hashing' | 'writing'): (bytes: number, fileDone: boolean) => void {
      if (!report) return () => {};
      let files = 0;
      let bytes = 0;
      report({ phase, files, totalFiles, bytes, totalBytes });
      return (n, fileDone) => {
        bytes += n;
        if (fileDone) files++;
        // A file that grew since the walk counts whole; the total follows it.
        report({ phase, files, totalFiles: Math.max(totalFiles, files), bytes, totalBytes: Math.max(totalBytes, bytes) });
      };
    },
    reader(): ((bytes: number, total: number) => void) | undefined {
      if (!report) return undefined;
      return (bytes, total) => report({ phase: 'verifying', files: 0, totalFiles: 0, bytes, totalBytes: total });
    },
  };
}

/** Gives the finished partial its final name, never replacing an archive that exists. */
async function publish(partial: string, dest: string, created: Date, model: string | undefined): Promise<string> {
  const names = [archiveName(created, { model }), archiveName(created, { milliseconds: true, model })];
  for (let i = 2; i < 100; i++) names.push(archiveName(created, { milliseconds: true, counter: i, model }));
  for (const name of names) {
    const target = join(dest, name);
    try {
      await link(partial, target); // fails with EEXIST instead of replacing, unlike rename
      await unlink(partial);
      return target;
    } catch (err) {
      const code = errnoCode(err);
      if (code === 'EEXIST') continue;
      if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'ENOSYS' && code !== 'EMLINK') throw err;
      // A file system without hard links: check, then rename.
      if (await exists(target)) continue;
      await rename(partial, target);
      return target;
    }
  }
  throw new BackupError('DESTINATION', `too many archives named for ${created.toISOString()} in ${dest}`);
}

/**
 * Writes a new archive of `<modelsDir>/production` (and the Redis folder), or with `model` of
 * `<modelsDir>/production/<model>` only, into `dest`: hashed, packed into a hidden .partial file,
 * fsynced, read back and verified, then renamed to its final name. Anything that fails removes the
 * partial file; nothing half-written is ever listed.
 */
export async function createBackup(options: CreateOptions): Promise<CreateResult> {
  const started = performance.now();
  const now = options.now ?? (() => new Date());
  const { model } = options;
  if (model !== undefined) checkModelName(model);
  if (options.includeRedis && model === undefined)
    throw new BackupError('USAGE', '--include-redis goes with --model (a whole-store archive holds the Redis data folder whenever one is configured)');
  if (options.includeRedis && !options.redisDir)
    throw new BackupError('USAGE', '--include-redis needs the Redis data folder: pass --redis-dir or set REDIS_DATA_DIR');
  const dest = resolve(options.dest);
  const st = await stat(dest).catch((err: unknown) => {
    throw destinationError(err, dest);
  });
  if (!st.isDirectory()) throw new BackupError('DESTINATION', `the backup folder ${dest} is not a folder`);
  await removeStalePartials(dest, now().getTime());

  const productionRoot = await sourceFolder(
    join(options.modelsDir, 'production'),
    'the model store folder',
    'set MODELS_DIR (or --models-dir) to the store root that holds production/',
  );
  let modelsRoot = productionRoot;
  if (model !== undefined) {
    modelsRoot = join(productionRoot, model);
    const mst = await lstat(modelsRoot).catch((err: unknown) => {
      if (errnoCode(err) === 'ENOENT') return undefined;
      throw new BackupError('SOURCE', `cannot read ${modelsRoot}: ${(err as Error).message}`, { cause: err });
    });
    if (!mst?.isDirectory()) {
      const known = (await readdir(productionRoot, { withFileTypes: true }).catch(() => []))
        .filter((e) => e.isDirectory() && isModelName(e.name))
        .map((e) => e.name)
        .sort();
      throw new BackupError(
        'SOURCE',
        `there is no model "${model}" in the model store (${mst ? `${modelsRoot} is not a folder` : `no folder ${modelsRoot}`}); ${known.length ? `its models: ${known.join(', ')}` : 'it holds no models'}`,
      );
    }
  }
  const withRedis = model === undefined || options.includeRedis;
  const redisRoot =
    options.redisDir && withRedis
      ? await sourceFolder(options.redisDir, 'the Redis data folder', 'set REDIS_DATA_DIR (or --redis-dir) to it, or to "" for none')
      : undefined;
  const sources: Manifest['sources'] = [{ name: 'models', path: modelsRoot, archivePath: model === undefined ? MODELS_PREFIX : modelPrefix(model) }];
  if (redisRoot) sources.push({ name: 'redis', path: redisRoot, archivePath: REDIS_PREFIX });
  const realDest = await realpath(dest);
  // A per-model archive must not land in the store either (in another model's folder, say).
  const guarded = [
    ...sources.map((src) => ({ path: src.path, why: 'which is being backed up' })),
    ...(model !== undefined ? [{ path: productionRoot, why: 'the model store' }] : []),
  ];
  for (const src of guarded) {
    const rel = relative(await realpath(src.path), realDest);
    if (rel === '' || (!rel.startsWith('..') && !isAbsolute(rel)))
      throw new BackupError('USAGE', `the backup folder ${dest} is inside ${src.path}, ${src.why}; choose a folder outside it`);
  }

  for (let attempt = 1; ; attempt++) {
    const created = now();
    const partial = join(dest, partialName(created, model));
    let fh: FileHandle;
    try {
      fh = await open(partial, 'wx', 0o644);
    } catch (err) {
      throw destinationError(err, dest);
    }
    let closed = false;
    try {
      const progress = await progressOf(options, sources);
      const scan: Scan = { directories: [], files: [], warnings: [] };
      for (const src of sources) await scanSource(src.path, src.archivePath, scan, options.signal, true, progress.counter('hashing'));
      const manifest: Manifest = {
        format: FORMAT,
        formatVersion: model === undefined ? FORMAT_VERSION : MODEL_FORMAT_VERSION,
        created: created.toISOString(),
        createdBy: `analytics-api ${serviceVersion}`,
        hostname: hostname(),
        ...(model !== undefined ? { model } : {}),
        sources,
        directories: scan.directories.map((d) => d.archivePath),
        files: scan.files.map((f) => ({ path: f.archivePath, size: f.stat.size, sha256: f.sha256 })),
        totals: { files: scan.files.length, bytes: scan.files.reduce((n, f) => n + f.stat.size, 0) },
      };
      progress.totals(manifest.totals.files, manifest.totals.bytes);
      await writeArchiveFile(fh, dest, manifest, scan, options.signal, progress.counter('writing'));
      closed = true; // written, fsynced and closed
      await checkUnchanged(scan, sources, options.signal);
      let verified: VerifiedArchive;
      try {
        verified = await verifyArchive(partial, progress.reader());
      } catch (err) {
        throw new BackupError('CORRUPT', `the archive just written to ${dest} does not read back intact (${(err as Error).message}); check the disk`, {
          cause: err,
        });
      }
      const path = await publish(partial, dest, created, model).catch((err: unknown) => {
        throw destinationError(err, dest);
      });
      await syncDir(dest);
      return {
        name: basename(path),
        path,
        created,
        sizeBytes: verified.archiveBytes,
        files: manifest.totals.files,
        bytes: manifest.totals.bytes,
        durationMs: performance.now() - started,
        sources,
        ...(model !== undefined ? { model } : {}),
        warnings: scan.warnings,
      };
    } catch (err) {
      if (!closed) await fh.close().catch(() => undefined);
      await unlink(partial).catch(() => undefined);
      if (err instanceof BackupError && err.code === 'SOURCE_CHANGED' && attempt < ATTEMPTS) continue;
      if (err instanceof BackupError && err.code === 'SOURCE_CHANGED')
        throw new BackupError('SOURCE_CHANGED', `${err.message}, ${ATTEMPTS} times in a row; run the backup when the store is quieter`, { cause: err });
      throw err;
    }
  }
}
