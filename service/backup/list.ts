import { lstat, readdir, unlink } from 'node:fs/promises';
import { basename, isAbsolute, join, resolve } from 'node:path';
import { MODEL_NAME_RULE } from '../../contract/model-names.ts';
import { exists } from '../store/durable-fs.ts';
import { PARTIAL_NAME, isModelName, parseArchiveName } from './archive.ts';
import { BackupError, errnoCode } from './errors.ts';

// `backup list`, and finding archives in the backup folder: by name, by path, or the newest of a
// scope (one model's archives, or the whole-store ones). Unfinished (.partial) files are never
// archives; old ones are a crash's leftovers and create/prune remove them.

/** Unfinished archives older than this are someone's crash, and `create`/`prune` remove them. */
const STALE_PARTIAL_MS = 60 * 60 * 1000;

export interface ArchiveInfo {
  name: string;
  path: string;
  /** The UTC time in the name: when the backup started. */
  created: Date;
  sizeBytes: number;
  /** The model of a per-model archive (from its name); absent for a whole-store archive. */
  model?: string;
}

/** Which archives a command considers: one model's, or (no model) the whole-store ones. */
export interface ArchiveScope {
  /** A model name: only that model's archives. Absent: only whole-store archives. */
  model?: string | undefined;
}

/** Throws a USAGE error unless `model` is a valid model name. */
export function checkModelName(model: string): void {
  if (!isModelName(model)) throw new BackupError('USAGE', `--model "${model}": ${MODEL_NAME_RULE}`);
}

async function readDestination(dest: string): Promise<string[]> {
  try {
    return await readdir(dest);
  } catch (err) {
    const code = errnoCode(err);
    if (code === 'ENOENT') throw new BackupError('DESTINATION', `the backup folder ${dest} does not exist; pass --dest or set BACKUP_DIR`);
    if (code === 'ENOTDIR') throw new BackupError('DESTINATION', `the backup folder ${dest} is not a folder`);
    throw new BackupError('DESTINATION', `cannot read the backup folder ${dest}: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * The complete archives in `dest`, newest first: with `model`, only that model's archives; without,
 * only whole-store archives. Unfinished (.partial) files are never listed.
 */
export async function listBackups(dest: string, scope: ArchiveScope = {}): Promise<ArchiveInfo[]> {
  if (scope.model !== undefined) checkModelName(scope.model);
  return (await listAllBackups(dest)).filter((a) => a.model === scope.model);
}

/** Every complete archive in `dest`, whole-store and per-model alike, newest first. */
export async function listAllBackups(dest: string): Promise<ArchiveInfo[]> {
  const found: Array<ArchiveInfo & { counter: number }> = [];
  for (const name of await readDestination(dest)) {
    const parsed = parseArchiveName(name);
    if (!parsed) continue;
    const st = await lstat(join(dest, name)).catch(() => undefined);
    if (!st?.isFile()) continue;
    found.push({
      name,
      path: join(dest, name),
      created: parsed.created,
      counter: parsed.counter,
      sizeBytes: st.size,
      ...(parsed.model !== undefined ? { model: parsed.model } : {}),
    });
  }
  found.sort((a, b) => b.created.getTime() - a.created.getTime() || b.counter - a.counter || b.name.localeCompare(a.name));
  return found.map(({ counter: _c, ...info }) => info);
}

/**
 * An archive named on the command line: a path, a name in `dest`, or the newest (`latest`) of the
 * scope (one model's archives with `model`, else the whole-store ones).
 */
export async function resolveArchive(
  ref: string | undefined,
  options: { dest?: string | undefined; latest?: boolean | undefined; model?: string | undefined },
): Promise<string> {
  if (options.latest) {
    if (ref !== undefined) throw new BackupError('USAGE', 'name an archive or pass --latest, not both');
    if (!options.dest) throw new BackupError('USAGE', '--latest needs the backup folder: pass --dest or set BACKUP_DIR');
    const newest = (await listBackups(options.dest, { model: options.model }))[0];
    if (newest) return newest.path;
    if (options.model !== undefined) throw new BackupError('NOT_FOUND', `there are no archives of the model ${options.model} in ${options.dest}`);
    const perModel = (await listAllBackups(options.dest)).length;
    throw new BackupError(
      'NOT_FOUND',
      `there are no archives in ${options.dest}${perModel ? ` (only per-model archives, ${perModel}; pass --model NAME for those)` : ''}`,
    );
  }
  if (ref === undefined || ref === '') throw new BackupError('USAGE', 'name an archive (a path, or a name in --dest) or pass --latest');
  if (PARTIAL_NAME.test(basename(ref))) throw new BackupError('NOT_FOUND', `${ref} is an unfinished backup (.partial), never a usable archive`);
  const candidates = isAbsolute(ref) || ref.includes('/') || !options.dest ? [resolve(ref)] : [resolve(ref), join(options.dest, ref)];
  for (const c of candidates.reverse()) if (await exists(c)) return c;
  throw new BackupError('NOT_FOUND', `archive ${ref} does not exist${options.dest && !ref.includes('/') ? ` (nor in ${options.dest})` : ''}`);
}

/** Removes unfinished archives whose last write is older than STALE_PARTIAL_MS. */
export async function removeStalePartials(dest: string, now = Date.now()): Promise<string[]> {
  const removed: string[] = [];
  for (const name of await readDestination(dest)) {
    if (!PARTIAL_NAME.test(name)) continue;
    const st = await lstat(join(dest, name)).catch(() => undefined);
    if (!st?.isFile() || now - st.mtimeMs < STALE_PARTIAL_MS) continue;
    await unlink(join(dest, name)).then(
      () => removed.push(name),
      () => undefined,
    );
  }
  return removed;
}
