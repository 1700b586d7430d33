import { unlink } from 'node:fs/promises';
import { figures } from '../../contract/figures.ts';
import { syncDir } from '../store/durable-fs.ts';
import { BackupError, destinationError, errnoCode } from './errors.ts';
import { listBackups, removeStalePartials, type ArchiveInfo } from './list.ts';

// `backup prune`: the retention (the specification's 7 days), per scope, never the newest archive.

const DAY_MS = 24 * 60 * 60 * 1000;

export interface PruneOptions {
  dest: string;
  retentionDays?: number;
  now?: Date;
  dryRun?: boolean | undefined;
  /** Prune only this model's archives; without it, only whole-store archives are pruned. */
  model?: string | undefined;
}

export interface PruneResult {
  kept: ArchiveInfo[];
  deleted: ArchiveInfo[];
  cutoff: Date;
}

/**
 * Deletes the archives whose name's timestamp is older than `retentionDays` days, but never the
 * newest archive (so a store that stopped changing keeps its last backup). Only the archives of
 * the scope are considered: one model's with `model`, else the whole-store ones; others are never
 * touched and do not count as the newest.
 */
export async function pruneBackups(options: PruneOptions): Promise<PruneResult> {
  const days = options.retentionDays ?? figures.backup.retentionDays;
  if (!Number.isInteger(days) || days < 0) throw new BackupError('USAGE', `the retention must be a whole number of days (0 or more), not ${days}`);
  const now = options.now ?? new Date();
  const cutoff = new Date(now.getTime() - days * DAY_MS);
  const archives = await listBackups(options.dest, { model: options.model });
  const kept: ArchiveInfo[] = [];
  const deleted: ArchiveInfo[] = [];
  for (const [i, a] of archives.entries()) {
    if (i === 0 || a.created.getTime() >= cutoff.getTime()) {
      kept.push(a);
      continue;
    }
    if (!options.dryRun) {
      try {
        await unlink(a.path);
      } catch (err) {
        if (errnoCode(err) === 'ENOENT') continue; // pruned by someone else meanwhile
        throw destinationError(err, options.dest);
      }
    }
    deleted.push(a);
  }
  if (!options.dryRun) {
    await removeStalePartials(options.dest, now.getTime());
    if (deleted.length) await syncDir(options.dest);
  }
  return { kept, deleted, cutoff };
}
