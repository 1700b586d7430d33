import { existsSync } from 'node:fs';
import { figures } from '../figures.ts';
import { createBackup, pruneBackups, type BackupLog, type CreateResult } from './backup.ts';
import { nextRun, parseCron } from './cron.ts';
import { BackupError, oneLine } from './errors.ts';

// Scheduled backups inside the standalone service (docker compose, `make run`): at each time of
// a cron expression (UTC), `create` and then, when it succeeded, `prune`. In Kubernetes the
// operator's CronJobs run the CLI instead.

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
  /** The clock, in ms since the epoch; tests shift it. */
  now?: () => number;
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

/** Longest single sleep, so a clock change or a suspended machine is noticed within a minute. */
const MAX_SLEEP_MS = 60_000;

/** Starts the schedule; throws a BackupError at once if the cron expression is invalid. */
export function startBackupScheduler(options: BackupSchedulerOptions): BackupScheduler {
  const schedule = parseCron(options.schedule ?? figures.backup.schedule);
  const now = options.now ?? Date.now;
  const retentionDays = options.retentionDays ?? figures.backup.retentionDays;
  if (!Number.isInteger(retentionDays) || retentionDays < 0) throw new BackupError('USAGE', `the backup retention must be a whole number of days, not ${retentionDays}`);
  const { log } = options;
  let next = nextRun(schedule, new Date(now()));
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<ScheduledRun> | undefined;
  let stopped = false;

  const run = (): Promise<ScheduledRun> => {
    if (running) return running;
    const startedAt = new Date(now());
    const t0 = performance.now();
    running = (async (): Promise<ScheduledRun> => {
      let result: ScheduledRun;
      try {
        const archive = await createBackup({ dest: options.dest, modelsDir: options.modelsDir, redisDir: options.redisDir, now: () => new Date(now()) });
        for (const w of archive.warnings) log.warn({ warning: w }, 'backup: file left out');
        const pruned = await pruneBackups({ dest: options.dest, retentionDays, now: new Date(now()) });
        result = { ok: true, startedAt, durationMs: performance.now() - t0, archive, pruned: pruned.deleted.map((a) => a.name) };
        log.info(
          { archive: archive.path, files: archive.files, bytes: archive.bytes, sizeBytes: archive.sizeBytes, durationMs: Math.round(result.durationMs), pruned: result.pruned, kept: pruned.kept.length },
          'scheduled backup created',
        );
      } catch (err) {
        result = { ok: false, startedAt, durationMs: performance.now() - t0, error: oneLine(err), ...(err instanceof BackupError ? { errorCode: err.code } : {}) };
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

  const arm = () => {
    if (stopped || !next) return;
    timer = setTimeout(tick, Math.max(0, Math.min(next.getTime() - now(), MAX_SLEEP_MS)));
    timer.unref();
  };

  function tick() {
    timer = undefined;
    if (stopped || !next) return;
    const t = now();
    if (t >= next.getTime()) {
      if (running) log.warn({ scheduled: next.toISOString() }, 'scheduled backup skipped: the previous one is still running');
      else void run();
      next = nextRun(schedule, new Date(Math.max(t, next.getTime())));
    }
    arm();
  }

  if (!existsSync(options.dest)) log.warn({ dest: options.dest }, 'the backup folder does not exist; scheduled backups fail until it does');
  arm();
  log.info({ schedule: schedule.source, next: next?.toISOString(), dest: options.dest, retentionDays }, 'backup schedule started (UTC)');

  return {
    get nextRun() {
      return next;
    },
    runNow: run,
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      timer = undefined;
      if (running) await running;
    },
  };
}
