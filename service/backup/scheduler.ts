import { existsSync } from 'node:fs';
import { figures } from '../../contract/figures.ts';
import { createBackup, type CreateResult } from './create.ts';
import { pruneBackups } from './prune.ts';
import { every, parseSchedule } from './schedule.ts';
import { BackupError, oneLine } from './errors.ts';

// Scheduled backups inside the standalone service (docker compose, `make run`): at each time of
// a cron expression (UTC), `create` and then, when it succeeded, `prune`. In Kubernetes the
// operator's CronJobs run the CLI instead.

export interface BackupLog {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface BackupSchedulerOptions {
  /** Five-field cron expression, UTC (default figures.backup.schedule: daily at 02:00). */
  schedule?: string;
  dest: string;
  modelsDir: string;
  redisDir?: string | undefined;
  retentionDays?: number;
  log: BackupLog;
  /** Called after every run (e.g. to update metrics). */
  onRun?: (result: ScheduledRun) => void;
}

export interface ScheduledRun {
  ok: boolean;
  startedAt: Date;
  durationMs: number;
  archive?: CreateResult;
  /** Names of the archives prune deleted. */
  pruned?: string[];
  error?: string;
  errorCode?: string;
}

export interface BackupScheduler {
  /** The next time a backup runs. */
  readonly nextRun: Date | undefined;
  /** Runs a backup now (waits for one already running instead of starting a second). */
  runNow(): Promise<ScheduledRun>;
  /** Stops the timer and waits for a running backup to finish. */
  stop(): Promise<void>;
}

/** Starts the schedule; throws a BackupError at once if the cron expression is invalid. */
export function startBackupScheduler(options: BackupSchedulerOptions): BackupScheduler {
  const schedule = parseSchedule(options.schedule ?? figures.backup.schedule);
  const retentionDays = options.retentionDays ?? figures.backup.retentionDays;
  if (!Number.isInteger(retentionDays) || retentionDays < 0)
    throw new BackupError('USAGE', `the backup retention must be a whole number of days, not ${retentionDays}`);
  const { log } = options;
  let running: Promise<ScheduledRun> | undefined;

  const run = (): Promise<ScheduledRun> => {
    if (running !== undefined) return running;
    const startedAt = new Date();
    const t0 = performance.now();
    running = (async (): Promise<ScheduledRun> => {
      let result: ScheduledRun;
      try {
        const archive = await createBackup({ dest: options.dest, modelsDir: options.modelsDir, redisDir: options.redisDir });
        for (const w of archive.warnings) log.warn({ warning: w }, 'backup: file left out');
        const pruned = await pruneBackups({ dest: options.dest, retentionDays });
        result = { ok: true, startedAt, durationMs: performance.now() - t0, archive, pruned: pruned.deleted.map((a) => a.name) };
        log.info(
          {
            archive: archive.path,
            files: archive.files,
            bytes: archive.bytes,
            sizeBytes: archive.sizeBytes,
            durationMs: Math.round(result.durationMs),
            pruned: result.pruned,
            kept: pruned.kept.length,
          },
          'scheduled backup created',
        );
      } catch (err) {
        result = {
          ok: false,
          startedAt,
          durationMs: performance.now() - t0,
          error: oneLine(err),
          ...(err instanceof BackupError ? { errorCode: err.code } : {}),
        };
        log.error({ error: result.error, code: result.errorCode, dest: options.dest }, 'scheduled backup failed');
      }
      try {
        options.onRun?.(result);
      } catch (err) {
        log.warn({ error: oneLine(err) }, 'backup onRun callback failed');
      }
      return result;
    })().finally(() => {
      running = undefined;
    });
    return running;
  };

  const timer = every(schedule, () => {
    if (running !== undefined) log.warn({ schedule }, 'scheduled backup skipped: the previous one is still running');
    else void run();
  });

  if (!existsSync(options.dest)) log.warn({ dest: options.dest }, 'the backup folder does not exist; scheduled backups fail until it does');
  log.info({ schedule, next: timer.next()?.toISOString(), dest: options.dest, retentionDays }, 'backup schedule started (UTC)');

  return {
    get nextRun() {
      return timer.next();
    },
    runNow: run,
    async stop() {
      timer.stop();
      if (running !== undefined) await running;
    },
  };
}
