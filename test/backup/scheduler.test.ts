import assert from 'node:assert/strict';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { archiveName, parseArchiveName } from '../../service/backup/archive.ts';
import { nextRun, parseSchedule } from '../../service/backup/schedule.ts';
import { BackupError } from '../../service/backup/errors.ts';
import { startBackupScheduler, type BackupLog, type ScheduledRun } from '../../service/backup/scheduler.ts';
import { figures } from '../../contract/figures.ts';
import type { FastifyBaseLogger } from 'fastify';
import { sandbox } from './helpers.ts';

// The service's logger is a BackupLog (checked by the type checker).
export const serviceLogIsBackupLog = (log: FastifyBaseLogger): BackupLog => log;

const at = (iso: string) => new Date(iso);
const next = (expr: string, after: string) => nextRun(parseSchedule(expr), at(after))?.toISOString();

test('cron: the schedule of the figures is daily at 02:00 UTC', () => {
  assert.equal(next(figures.backup.schedule, '2026-11-26T01:59:30Z'), '2026-11-26T02:00:00.000Z');
  assert.equal(next(figures.backup.schedule, '2026-11-26T02:00:00Z'), '2026-11-27T02:00:00.000Z');
  assert.equal(next(figures.backup.schedule, '2026-12-31T03:00:00Z'), '2027-01-01T02:00:00.000Z');
});

test('cron: stars, numbers, names, lists, ranges, steps and macros', () => {
  assert.equal(next('*/15 * * * *', '2026-11-26T10:07:12Z'), '2026-11-26T10:15:00.000Z');
  assert.equal(next('5/20 * * * *', '2026-11-26T10:46:00Z'), '2026-11-26T11:05:00.000Z');
  assert.equal(next('0 9-17/4 * * *', '2026-11-26T13:00:00Z'), '2026-11-26T17:00:00.000Z');
  assert.equal(next('30 4 * * 1-5', '2026-11-27T05:00:00Z'), '2026-11-30T04:30:00.000Z'); // Fri → Mon
  assert.equal(next('0 0 * * SUN', '2026-11-26T00:00:00Z'), '2026-11-29T00:00:00.000Z');
  assert.equal(next('0 0 * * 7', '2026-11-26T00:00:00Z'), '2026-11-29T00:00:00.000Z');
  assert.equal(next('0 12 1,15 * *', '2026-11-16T00:00:00Z'), '2026-12-01T12:00:00.000Z');
  assert.equal(next('0 0 1 jan-mar *', '2026-04-01T00:00:00Z'), '2027-01-01T00:00:00.000Z');
  // Both day fields restricted: either matches (Vixie cron).
  assert.equal(next('0 0 13 * FRI', '2026-11-01T00:00:00Z'), '2026-11-06T00:00:00.000Z');
  assert.equal(next('0 0 29 2 *', '2026-03-01T00:00:00Z'), '2028-02-29T00:00:00.000Z');
  assert.equal(next('@hourly', '2026-11-26T10:00:00Z'), '2026-11-26T11:00:00.000Z');
  assert.equal(next('@daily', '2026-11-26T10:00:00Z'), '2026-11-27T00:00:00.000Z');
  assert.equal(next('@weekly', '2026-11-26T10:00:00Z'), '2026-11-29T00:00:00.000Z');
  assert.equal(next('@monthly', '2026-11-26T10:00:00Z'), '2026-12-01T00:00:00.000Z');
  assert.equal(next('@yearly', '2026-11-26T10:00:00Z'), '2027-01-01T00:00:00.000Z');
  assert.equal(next('  0   2  *  *  *  ', '2026-11-26T01:00:00Z'), '2026-11-26T02:00:00.000Z');
});

test('cron: invalid expressions are refused with a clear message', () => {
  const bad: Array<[string, RegExp]> = [
    ['61 * * * *', /Invalid value for minute: 61/],
    ['* 24 * * *', /Invalid value for hour: 24/],
    ['* * 0 * *', /Invalid value for day/],
    ['* * * 13 *', /Invalid value for month/],
    ['* * * * 8', /Invalid value for dayOfWeek: 8/],
    ['* * *', /it has 3 fields, cron needs 5/],
    ['* * * * * *', /it has 6 fields/],
    ['', /it has 0 fields/],
    ['*/0 * * * *', /illegal stepping: 0/],
    ['5-1 * * * *', /From value is larger than to value/],
    ['a * * * *', /illegal characters/],
    ['1,,2 * * * *', /is empty/],
    ['0 0 31 2 *', /it never fires/],
    ['@often', /unknown macro/],
    ['1-2-3 * * * *', /illegal range/],
  ];
  for (const [expr, reason] of bad)
    assert.throws(
      () => parseSchedule(expr),
      (err: unknown) => err instanceof BackupError && err.code === 'USAGE' && reason.test(err.message) && err.message.includes(`"${expr}"`),
      expr,
    );
  assert.throws(() => startBackupScheduler({ schedule: '* * *', dest: '/x', modelsDir: '/y', log: silentLog() }), /cron needs 5/);
});

function silentLog(lines: string[] = []): BackupLog {
  const push = (level: string) => (obj: object, msg?: string) => void lines.push(`${level} ${msg ?? ''} ${JSON.stringify(obj)}`);
  return { info: push('info'), warn: push('warn'), error: push('error') };
}

test('the scheduler runs create then prune at the scheduled minute', { timeout: 60_000 }, async (t) => {
  const root = await sandbox(t);
  const store = join(root, 'store');
  const dest = join(root, 'backups');
  await mkdir(join(store, 'production', 'm', '1'), { recursive: true });
  await writeFile(join(store, 'production', 'm', '1', 'model.onnx'), 'model');
  await mkdir(dest);
  // The mocked clock 300 ms before a whole minute: "* * * * *" is due after one 300 ms tick.
  t.mock.timers.enable({ apis: ['setTimeout', 'Date'], now: Math.ceil(Date.now() / 60_000) * 60_000 + 60_000 - 300 });
  const expired = archiveName(new Date(Date.now() - (figures.backup.retentionDays + 2) * 24 * 3600_000));
  await writeFile(join(dest, expired), 'old');

  const lines: string[] = [];
  let resolveRun!: (r: ScheduledRun) => void;
  const ran = new Promise<ScheduledRun>((r) => (resolveRun = r));
  const scheduler = startBackupScheduler({ schedule: '* * * * *', dest, modelsDir: store, log: silentLog(lines), onRun: resolveRun });
  t.after(() => scheduler.stop());
  const firesAt = scheduler.nextRun!.getTime();
  assert.equal(firesAt - Date.now(), 300, 'the next run is at the whole minute');
  t.mock.timers.tick(300);

  const result = await ran;
  assert.equal(result.ok, true, result.error);
  assert.ok(result.startedAt.getTime() >= firesAt);
  assert.deepEqual(result.pruned, [expired]);
  const archives = (await readdir(dest)).filter((n) => parseArchiveName(n));
  assert.deepEqual(archives, [result.archive!.name]);
  assert.ok(scheduler.nextRun!.getTime() >= firesAt + 60_000);
  assert.ok(lines.some((l) => l.startsWith('info scheduled backup created')));

  // A run that fails is logged and reported, and prune is not run after it.
  const failing = startBackupScheduler({ schedule: '0 2 * * *', dest: join(root, 'gone'), modelsDir: store, log: silentLog(lines) });
  const failed = await failing.runNow();
  await failing.stop();
  assert.equal(failed.ok, false);
  assert.equal(failed.errorCode, 'DESTINATION');
  assert.match(failed.error!, /does not exist/);
  assert.ok(lines.some((l) => l.startsWith('error scheduled backup failed')));

  await scheduler.stop();
  assert.equal((await readdir(dest)).filter((n) => parseArchiveName(n)).length, 1);
});
