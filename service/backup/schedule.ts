import { Cron } from 'croner';
import { BackupError } from './errors.ts';

// When scheduled backups run: a five-field cron expression (minute hour day-of-month month
// day-of-week) or a macro (@daily, @hourly, ...), in UTC like the archive names, as a Kubernetes
// CronJob reads it. croner parses and evaluates it; this module only holds the expression to five
// fields (croner would also take a seconds field) and refuses ones that never fire.

const FIELDS = 'minute 0-59, hour 0-23, day of month 1-31, month 1-12 or JAN-DEC, day of week 0-7 or SUN-SAT';
const MACROS = new Set(['@yearly', '@annually', '@monthly', '@weekly', '@daily', '@midnight', '@hourly']);
// UTC; "5/20" read as 5-59/20, as Vixie cron and Kubernetes CronJobs do.
const OPTIONS = { timezone: 'Etc/UTC', mode: '5-part', sloppyRanges: true } as const;

/** The expression, checked; throws a BackupError (USAGE) that names it and says what is wrong. */
export function parseSchedule(expression: string): string {
  const text = expression.trim().replace(/\s+/g, ' ');
  const fail = (why: string): never => {
    throw new BackupError('USAGE', `the backup schedule "${expression}" is not a cron expression: ${why}`);
  };
  const fields = text === '' ? 0 : text.split(' ').length;
  if (text.startsWith('@') && !MACROS.has(text.toLowerCase())) fail(`unknown macro; use one of ${[...MACROS].join(', ')}`);
  if (!text.startsWith('@') && fields !== 5) fail(`it has ${fields} fields, cron needs 5 (${FIELDS})`);
  let cron: Cron;
  try {
    cron = new Cron(text, { ...OPTIONS, paused: true });
  } catch (err) {
    return fail(`${(err as Error).message.replace(/^CronPattern: /, '')} (${FIELDS})`);
  }
  if (!cron.nextRun(new Date(Date.UTC(2000, 0, 1)))) fail('it never fires');
  return text;
}

/** The first time the schedule fires after `after`. */
export function nextRun(schedule: string, after: Date): Date | undefined {
  return new Cron(schedule, { ...OPTIONS, paused: true }).nextRun(after) ?? undefined;
}

/** Runs `fn` at each time of the schedule until stopped; the timer does not keep the process alive. */
export function every(schedule: string, fn: () => void): { next(): Date | undefined; stop(): void } {
  const cron = new Cron(schedule, { ...OPTIONS, unref: true }, fn);
  return { next: () => cron.nextRun() ?? undefined, stop: () => cron.stop() };
}
