import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createReadStream, type Stats } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { Header, Pack, Parser, ReadEntry } from 'tar';
import { z } from 'zod';
import { MODEL_NAME } from '../../contract/model-names.ts';
import { BackupError, errnoCode } from './errors.ts';

// The archive format (docs/backups.md): a gzip-compressed tar whose first entry is MANIFEST.json,
// followed by the model store under models/production/ and the Redis data folder under redis/.
// The manifest lists every directory and every file with its size and sha256; an archive is
// valid only when its entries and the manifest agree exactly.
//
// A per-model archive (`backup create --model M`) holds only models/production/M/ (and redis/
// with --include-redis); its manifest names the model and has format version 2, so a tool that
// knows only version 1 refuses it instead of taking it for a whole store (whose restore would
// replace every other model with nothing).

export const MANIFEST_NAME = 'MANIFEST.json';
export const MODELS_PREFIX = 'models/production';
export const REDIS_PREFIX = 'redis';
export const FORMAT = 'analytics-api-backup';
export const FORMAT_VERSION = 1;
/** The format version of per-model archives (a manifest with `model`). */
export const MODEL_FORMAT_VERSION = 2;
/** A manifest larger than this is refused before it is parsed. */
const MAX_MANIFEST_BYTES = 64 * 1024 * 1024;
const READ_CHUNK = 1024 * 1024;

// ---- names ---------------------------------------------------------------------------------

// Whole store: analytics-backup-<ts>.tar.gz; one model: analytics-backup-<model>-<ts>.tar.gz. The
// timestamp is always the last part (before an optional counter) and holds an upper-case T and Z,
// which no model name can, so a name parses one way only.
const ARCHIVE_NAME =
  /^analytics-backup-(?:([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)-)?(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})(?:\.(\d{3}))?Z(?:-(\d+))?\.tar\.gz$/;
/** Unfinished archives: written under this name, renamed when complete; never listed. */
export const PARTIAL_NAME = /^\.analytics-backup-.*\.partial$/;

/** Whether `name` is a valid model name (the model store's rule: 1-63 of a-z, 0-9 and "-"). */
export function isModelName(name: string): boolean {
  return MODEL_NAME.test(name);
}

/** Where a model's folder is in an archive: `models/production/<model>`. */
export function modelPrefix(model: string): string {
  return `${MODELS_PREFIX}/${model}`;
}

/**
 * `analytics-backup-20261126T020000Z.tar.gz`, or `analytics-backup-<model>-20261126T020000Z.tar.gz`
 * for one model; with milliseconds and/or a counter when needed.
 */
export function archiveName(created: Date, options: { milliseconds?: boolean; counter?: number; model?: string | undefined } = {}): string {
  if (options.model !== undefined && !isModelName(options.model)) throw new BackupError('USAGE', `"${options.model}" is not a model name`);
  const iso = created.toISOString(); // 2026-11-26T02:00:00.123Z
  const stamp = iso.slice(0, 19).replace(/[-:]/g, '') + (options.milliseconds ? iso.slice(19, 23) : '');
  return `analytics-backup-${options.model !== undefined ? `${options.model}-` : ''}${stamp}Z${options.counter ? `-${options.counter}` : ''}.tar.gz`;
}

export function partialName(created: Date, model?: string): string {
  return `.${archiveName(created, { milliseconds: true, model }).replace(/\.tar\.gz$/, '')}-${process.pid}-${Math.random().toString(36).slice(2, 8)}.tar.gz.partial`;
}

/**
 * The UTC time in an archive's name (and a counter to order two of the same millisecond), and
 * the model for a per-model archive (undefined for a whole-store one).
 */
export function parseArchiveName(name: string): { created: Date; counter: number; model: string | undefined } | undefined {
  const m = ARCHIVE_NAME.exec(name);
  if (!m) return undefined;
  const [, model, y, mo, d, h, mi, s, ms, counter] = m;
  const created = new Date(Date.UTC(+y!, +mo! - 1, +d!, +h!, +mi!, +s!, ms ? +ms : 0));
  if (Number.isNaN(created.getTime()) || archiveName(created, { milliseconds: ms !== undefined, counter: counter ? +counter : 0, model }) !== name)
    return undefined;
  return { created, counter: counter ? +counter : 0, model };
}

// ---- manifest ------------------------------------------------------------------------------

const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/);

const ManifestSchema = z
  .object({
    format: z.literal(FORMAT),
    formatVersion: z.union([z.literal(FORMAT_VERSION), z.literal(MODEL_FORMAT_VERSION)]),
    created: z.iso.datetime(),
    createdBy: z.string(),
    hostname: z.string().optional(),
    /** Per-model archives only: the one model they hold (format version 2). */
    model: z.string().regex(MODEL_NAME, 'not a model name').optional(),
    sources: z.array(
      z.object({
        name: z.enum(['models', 'redis']),
        path: z.string().describe('The absolute folder that was backed up'),
        archivePath: z.string().describe(`${MODELS_PREFIX}, ${MODELS_PREFIX}/<model> (per-model archives) or ${REDIS_PREFIX}`),
      }),
    ),
    directories: z.array(z.string()),
    files: z.array(z.object({ path: z.string(), size: z.number().int().nonnegative(), sha256: sha256Hex })),
    totals: z.object({ files: z.number().int().nonnegative(), bytes: z.number().int().nonnegative() }),
  })
  .superRefine((m, ctx) => {
    if ((m.model !== undefined) !== (m.formatVersion === MODEL_FORMAT_VERSION))
      ctx.addIssue({ code: 'custom', path: ['model'], message: `a manifest names a model exactly when its format version is ${MODEL_FORMAT_VERSION}` });
    const models = m.model === undefined ? MODELS_PREFIX : modelPrefix(m.model);
    for (const [i, src] of m.sources.entries())
      if (src.archivePath !== (src.name === 'models' ? models : REDIS_PREFIX))
        ctx.addIssue({
          code: 'custom',
          path: ['sources', i, 'archivePath'],
          message: `must be ${src.name === 'models' ? models : REDIS_PREFIX} for the ${src.name} source`,
        });
  });

export type Manifest = z.infer<typeof ManifestSchema>;
export type ManifestFile = Manifest['files'][number];

// ---- entry safety --------------------------------------------------------------------------

const FILE_TYPES = new Set(['File', 'OldFile']);
const TOP_DIRECTORIES = new Set(['models', MODELS_PREFIX, REDIS_PREFIX]);

/**
 * Checks one entry of an archive against the layout and returns its normalised path (no trailing
 * slash). Refused: absolute paths, "." / ".." / empty segments, backslashes, NUL, links, devices,
 * FIFOs and anything outside MANIFEST.json, models/production/ and redis/.
 */
export function checkEntry(rawPath: string, type: string): string {
  const show = JSON.stringify(rawPath);
  if (!FILE_TYPES.has(type) && type !== 'Directory')
    throw new BackupError(
      'UNSAFE',
      `entry ${show} is a ${type === 'SymbolicLink' ? 'symbolic link' : type === 'Link' ? 'hard link' : type} entry; only files and folders are restored`,
    );
  if (rawPath.includes('\0') || rawPath.includes('\\')) throw new BackupError('UNSAFE', `entry ${show} has a NUL or backslash in its path`);
  if (rawPath.startsWith('/') || /^[A-Za-z]:/.test(rawPath)) throw new BackupError('UNSAFE', `entry ${show} has an absolute path`);
  const path = type === 'Directory' && rawPath.endsWith('/') ? rawPath.slice(0, -1) : rawPath;
  const segments = path.split('/');
  if (segments.includes('..')) throw new BackupError('UNSAFE', `entry ${show} climbs out with ".."`);
  if (segments.some((s) => s === '' || s === '.')) throw new BackupError('UNSAFE', `entry ${show} has an empty or "." path segment`);
  const inside = path.startsWith(`${MODELS_PREFIX}/`) || path.startsWith(`${REDIS_PREFIX}/`);
  if (path === MANIFEST_NAME ? type === 'Directory' : !(inside || (type === 'Directory' && TOP_DIRECTORIES.has(path))))
    throw new BackupError('UNSAFE', `entry ${show} is outside ${MANIFEST_NAME}, ${MODELS_PREFIX}/ and ${REDIS_PREFIX}/`);
  return path;
}

/**
 * For a per-model archive, an entry (already through checkEntry) must be inside
 * models/production/<model>/, or redis/ when the archive holds Redis data; the folders above them
 * are allowed. A whole-store archive passes everything checkEntry passed.
 */
function checkScope(path: string, type: string, manifest: Pick<Manifest, 'model' | 'sources'>): void {
  if (manifest.model === undefined || path === MANIFEST_NAME) return;
  const prefix = modelPrefix(manifest.model);
  const redis = manifest.sources.some((s) => s.name === 'redis');
  if (path.startsWith(`${prefix}/`) || (redis && path.startsWith(`${REDIS_PREFIX}/`))) return;
  if (type === 'Directory' && (path === 'models' || path === MODELS_PREFIX || path === prefix || (redis && path === REDIS_PREFIX))) return;
  throw new BackupError(
    'UNSAFE',
    `entry ${JSON.stringify(path)} is outside ${prefix}/${redis ? ` and ${REDIS_PREFIX}/` : ''}, in an archive of the model ${manifest.model}`,
  );
}

/** With an expected model, the manifest must be a per-model archive of it. */
export function checkArchiveModel(path: string, manifest: Manifest, model: string | undefined): void {
  if (model === undefined || manifest.model === model) return;
  throw new BackupError(
    'USAGE',
    manifest.model === undefined
      ? `archive ${path} is a whole-store archive, not one of the model ${model}; leave out --model to use it`
      : `archive ${path} holds the model ${manifest.model}, not ${model}`,
  );
}

// ---- reading and verifying -------------------------------------------------------------------

export interface VerifiedArchive {
  manifest: Manifest;
  /** Bytes of the compressed archive. */
  archiveBytes: number;
}

function parseManifest(bytes: Buffer): Manifest {
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new BackupError('CORRUPT', `${MANIFEST_NAME} is not valid JSON (${(err as Error).message})`);
  }
  const parsed = ManifestSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new BackupError(
      'CORRUPT',
      `${MANIFEST_NAME} is not an ${FORMAT} manifest of format version ${FORMAT_VERSION} or ${MODEL_FORMAT_VERSION}: ${issue.path.join('.') || '(root)'}: ${issue.message}`,
    );
  }
  const manifest = parsed.data;
  const seen = new Set<string>();
  for (const p of [...manifest.directories.map((d) => ({ path: d, type: 'Directory' })), ...manifest.files.map((f) => ({ path: f.path, type: 'File' }))]) {
    const normal = checkEntry(p.path, p.type);
    checkScope(normal, p.type, manifest);
    if (normal !== p.path || normal === MANIFEST_NAME)
      throw new BackupError('UNSAFE', `${MANIFEST_NAME} lists the path ${JSON.stringify(p.path)}, which no archive may hold`);
    if (seen.has(normal)) throw new BackupError('CORRUPT', `${MANIFEST_NAME} lists ${JSON.stringify(normal)} twice`);
    seen.add(normal);
  }
  return manifest;
}

/**
 * Reads the whole archive and checks it: gzip and tar intact, MANIFEST.json first, every entry
 * safe (checkEntry), listed in the manifest with the same size and sha256, and every listed path
 * present exactly once. Throws a BackupError (NOT_FOUND, CORRUPT, CHECKSUM or UNSAFE) at the first
 * problem; reads nothing but the archive and writes nothing.
 */
export async function verifyArchive(file: string, onRead?: (bytes: number, archiveBytes: number) => void): Promise<VerifiedArchive> {
  let fh: FileHandle;
  try {
    fh = await open(file, 'r');
  } catch (err) {
    const code = errnoCode(err);
    if (code === 'ENOENT') throw new BackupError('NOT_FOUND', `archive ${file} does not exist`);
    throw new BackupError('IO', `cannot read archive ${file}: ${(err as Error).message}`, { cause: err });
  }
  let archiveBytes: number;
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new BackupError('NOT_FOUND', `archive ${file} is not a file`);
    archiveBytes = st.size;
    const magic = Buffer.alloc(2);
    await fh.read(magic, 0, 2, 0);
    if (archiveBytes < 2 || magic[0] !== 0x1f || magic[1] !== 0x8b) throw new BackupError('CORRUPT', `archive ${file} is not a gzip file`);
  } finally {
    await fh.close();
  }

  let manifest: Manifest | undefined;
  let failure: unknown;
  const files = new Map<string, ManifestFile>();
  const directories = new Set<string>();
  const seen = new Set<string>();
  let index = 0;
  const parser = new Parser({ strict: true });
  const fail = (err: unknown) => {
    if (failure === undefined) failure = err;
    parser.abort(err instanceof Error ? err : new Error(String(err)));
  };

  parser.on('entry', (entry: ReadEntry) => {
    const first = index++ === 0;
    if (failure !== undefined) return void entry.resume();
    try {
      const path = checkEntry(entry.path, entry.type);
      if (first !== (path === MANIFEST_NAME))
        throw new BackupError('CORRUPT', first ? `the first entry is ${JSON.stringify(path)}, not ${MANIFEST_NAME}` : `${MANIFEST_NAME} appears twice`);
      if (first) {
        if (entry.size > MAX_MANIFEST_BYTES) throw new BackupError('CORRUPT', `${MANIFEST_NAME} is ${entry.size} bytes, larger than any real manifest`);
        const chunks: Buffer[] = [];
        entry.on('data', (c: Buffer) => chunks.push(c));
        entry.on('end', () => {
          if (failure !== undefined) return;
          try {
            manifest = parseManifest(Buffer.concat(chunks));
            for (const f of manifest.files) files.set(f.path, f);
            for (const d of manifest.directories) directories.add(d);
          } catch (err) {
            fail(err);
          }
        });
        return;
      }
      if (!manifest) throw new BackupError('CORRUPT', `${MANIFEST_NAME} could not be read before the entry ${JSON.stringify(path)}`);
      checkScope(path, entry.type, manifest);
      if (seen.has(path)) throw new BackupError('CORRUPT', `entry ${JSON.stringify(path)} appears twice`);
      seen.add(path);
      if (entry.type === 'Directory') {
        if (!directories.has(path) && !TOP_DIRECTORIES.has(path))
          throw new BackupError('CORRUPT', `folder entry ${JSON.stringify(path)} is not in ${MANIFEST_NAME}`);
        return void entry.resume();
      }
      const listed = files.get(path);
      if (!listed) throw new BackupError('CORRUPT', `entry ${JSON.stringify(path)} is not in ${MANIFEST_NAME}`);
      if (listed.size !== entry.size)
        throw new BackupError('CHECKSUM', `entry ${JSON.stringify(path)} is ${entry.size} bytes, ${MANIFEST_NAME} says ${listed.size}`);
      const hash = createHash('sha256');
      entry.on('data', (c: Buffer) => hash.update(c));
      entry.on('end', () => {
        if (failure !== undefined) return;
        const actual = hash.digest('hex');
        if (actual !== listed.sha256)
          fail(new BackupError('CHECKSUM', `checksum mismatch for ${path}: sha256 ${actual}, ${MANIFEST_NAME} says ${listed.sha256}`));
      });
    } catch (err) {
      entry.resume();
      fail(err);
    }
  });

  const input = createReadStream(file);
  if (onRead) {
    let read = 0;
    input.on('data', (chunk) => {
      read += chunk.length;
      onRead(read, archiveBytes);
    });
  }
  await new Promise<void>((resolve) => {
    parser.on('end', resolve);
    parser.on('error', (err: unknown) => {
      if (failure === undefined) failure = err;
      input.destroy();
      resolve();
    });
    input.on('error', (err) => {
      if (failure === undefined) failure = err;
      resolve();
    });
    input.pipe(parser as unknown as NodeJS.WritableStream);
  });
  if (failure !== undefined) {
    if (failure instanceof BackupError)
      throw new BackupError(failure.code, `${failure.code === 'UNSAFE' ? 'refused ' : ''}archive ${file}: ${failure.message}`, { cause: failure });
    throw new BackupError('CORRUPT', `archive ${file} is damaged: ${(failure as Error).message ?? String(failure)}`, { cause: failure });
  }
  if (!manifest) throw new BackupError('CORRUPT', `archive ${file} holds no ${MANIFEST_NAME}`);
  for (const path of [...files.keys(), ...directories])
    if (!seen.has(path))
      throw new BackupError('CORRUPT', `archive ${file}: ${JSON.stringify(path)} is in ${MANIFEST_NAME} but not in the archive (truncated?)`);
  return { manifest, archiveBytes };
}

// ---- writing -------------------------------------------------------------------------------

export interface EntryStat {
  mode: number;
  mtime: Date;
  uid: number;
  gid: number;
}

/**
 * Streams exactly `size` bytes of the open file into `onChunk`, returning their sha256. Growth
 * past `size` (an append-only file being written) is ignored; a file that got shorter throws.
 */
export async function readExactly(fh: FileHandle, size: number, onChunk?: (chunk: Buffer) => Promise<void> | void, what = 'file'): Promise<string> {
  const hash = createHash('sha256');
  let pos = 0;
  while (pos < size) {
    const buf = Buffer.allocUnsafe(Math.min(READ_CHUNK, size - pos));
    const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
    if (bytesRead === 0) throw new BackupError('SOURCE_CHANGED', `${what} got shorter while it was being backed up`);
    const chunk = bytesRead === buf.length ? buf : buf.subarray(0, bytesRead);
    hash.update(chunk);
    if (onChunk) await onChunk(chunk);
    pos += bytesRead;
  }
  return hash.digest('hex');
}

/**
 * Writes a tar.gz through the tar package's Pack, entry by entry, with the paths, sizes and bytes
 * the caller gives (so archive paths need not mirror the source folders, and a file's size is the
 * one recorded in the manifest even if it grows meanwhile).
 */
export class ArchiveWriter {
  private readonly pack: Pack;
  private readonly done: Promise<void>;
  private failed: unknown;
  /** The error of the output (ENOSPC, EIO …), when writing failed. */
  outputError: unknown;

  constructor(out: NodeJS.WritableStream) {
    this.pack = new Pack({ gzip: true });
    this.done = pipeline(this.pack as unknown as NodeJS.ReadableStream, out);
    this.done.catch((err: unknown) => {
      if (this.failed === undefined) this.outputError = err;
      this.failed ??= err;
    });
  }

  /** Waits for an event of the entry, or fails as soon as the output does. */
  private wait(emitter: ReadEntry, event: string): Promise<void> {
    if (this.failed !== undefined) return Promise.reject(this.failed);
    const waiting = Promise.race([once(emitter, event).then(() => undefined), this.done.then(() => new Promise<never>(() => {}))]);
    // Callers may stop waiting after an earlier failure; that rejection must not go unhandled.
    waiting.catch(() => undefined);
    return waiting;
  }

  private header(path: string, type: 'File' | 'Directory', size: number, st: EntryStat): ReadEntry {
    if (this.failed !== undefined) throw this.failed;
    const entry = new ReadEntry(new Header({ path, type, size, mode: st.mode & 0o7777, mtime: st.mtime, uid: st.uid, gid: st.gid }));
    this.pack.add(entry);
    return entry;
  }

  async addDirectory(path: string, st: EntryStat): Promise<void> {
    const entry = this.header(`${path}/`, 'Directory', 0, st);
    const ended = this.wait(entry, 'end');
    entry.end();
    await ended;
  }

  /** Adds a file whose bytes come from `fill`, which must write exactly `size` bytes. */
  async addFile(path: string, size: number, st: EntryStat, fill: (write: (chunk: Buffer) => Promise<void>) => Promise<void>): Promise<void> {
    const entry = this.header(path, 'File', size, st);
    const ended = this.wait(entry, 'end');
    await fill(async (chunk) => {
      if (!entry.write(chunk)) await this.wait(entry, 'drain');
    });
    entry.end();
    await ended;
  }

  async finish(): Promise<void> {
    if (this.failed !== undefined) throw this.failed;
    this.pack.end();
    await this.done;
  }

  /** Stops writing after a failure (the caller removes the output file). */
  abort(err: unknown): void {
    this.failed ??= err;
    this.pack.destroy?.(err instanceof Error ? err : new Error(String(err)));
  }
}

export function entryStat(st: Stats): EntryStat {
  return { mode: st.mode, mtime: st.mtime, uid: st.uid, gid: st.gid };
}
