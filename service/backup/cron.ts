import { BackupError } from './errors.ts';

// Five-field cron expressions (minute hour day-of-month month day-of-week), evaluated in UTC like
// the archive names: `*`, numbers, names (JAN-DEC, SUN-SAT), lists `a,b`, ranges `a-b`, steps
// `*/n`, `a-b/n`, `a/n`, and the macros @hourly @daily @midnight @weekly @monthly @yearly
// @annually. As in Vixie cron, when both day fields are restricted a day matching either runs.

export interface CronSchedule {
  readonly source: string;
  readonly minutes: readonly boolean[];
  readonly hours: readonly boolean[];
  readonly daysOfMonth: readonly boolean[];
  readonly months: readonly boolean[];
  readonly daysOfWeek: readonly boolean[];
  readonly dayOfMonthRestricted: boolean;
  readonly dayOfWeekRestricted: boolean;
}

const MACROS: Record<string, string> = {
  '@yearly': '0 0 1 1 *',
  '@annually': '0 0 1 1 *',
  '@monthly': '0 0 1 * *',
  '@weekly': '0 0 * * 0',
  '@daily': '0 0 * * *',
  '@midnight': '0 0 * * *',
  '@hourly': '0 * * * *',
};

const MONTH_NAMES = ['JAN', 'FEB', 'MAR', 'APR', 'MAY', 'JUN', 'JUL', 'AUG', 'SEP', 'OCT', 'NOV', 'DEC'];
const DAY_NAMES = ['SUN', 'MON', 'TUE', 'WED', 'THU', 'FRI', 'SAT'];

interface FieldSpec {
  name: string;
  min: number;
  max: number;
  names?: string[];
  /** First value the names map to (1 for months, 0 for days). */
  nameBase?: number;
}

const FIELDS: FieldSpec[] = [
  { name: 'minute', min: 0, max: 59 },
  { name: 'hour', min: 0, max: 23 },
  { name: 'day-of-month', min: 1, max: 31 },
  { name: 'month', min: 1, max: 12, names: MONTH_NAMES, nameBase: 1 },
  { name: 'day-of-week', min: 0, max: 7, names: DAY_NAMES, nameBase: 0 },
];

function parseField(text: string, spec: FieldSpec, expr: string): boolean[] {
  const fail = (why: string): never => {
    throw new BackupError('USAGE', `invalid cron expression "${expr}": ${spec.name} field "${text}": ${why} (fields: minute hour day-of-month month day-of-week, e.g. "0 2 * * *")`);
  };
  const value = (s: string): number => {
    const upper = s.toUpperCase();
    const named = spec.names?.indexOf(upper) ?? -1;
    if (named >= 0) return named + spec.nameBase!;
    if (!/^\d+$/.test(s)) return fail(`"${s}" is not a number${spec.names ? ' or a name' : ''}`);
    const n = Number(s);
    if (n < spec.min || n > spec.max) fail(`${n} is out of range ${spec.min}-${spec.max}`);
    return n;
  };
  const set = new Array<boolean>(spec.max + 1).fill(false);
  if (text === '') fail('empty');
  for (const item of text.split(',')) {
    if (item === '') fail('empty list item');
    const [range, stepText, extra] = item.split('/');
    if (extra !== undefined) fail(`"${item}" has two steps`);
    let step = 1;
    if (stepText !== undefined) {
      if (!/^\d+$/.test(stepText) || Number(stepText) < 1) fail(`step "${stepText}" must be a whole number of 1 or more`);
      step = Number(stepText);
    }
    let lo: number;
    let hi: number;
    if (range === '*') [lo, hi] = [spec.min, spec.max];
    else if (range!.includes('-')) {
      const [a, b, more] = range!.split('-');
      if (more !== undefined || a === '' || b === '') fail(`"${range}" is not a range a-b`);
      [lo, hi] = [value(a!), value(b!)];
      if (lo > hi) fail(`range ${range} runs backwards`);
    } else {
      lo = value(range!);
      hi = stepText !== undefined ? spec.max : lo; // "a/n": from a to the end, every n
    }
    for (let v = lo; v <= hi; v += step) set[v] = true;
  }
  return set;
}

export function parseCron(expression: string): CronSchedule {
  const source = expression.trim();
  const expanded = MACROS[source.toLowerCase()] ?? source;
  if (expanded.startsWith('@')) throw new BackupError('USAGE', `invalid cron expression "${expression}": unknown macro; use one of ${Object.keys(MACROS).join(' ')}`);
  const parts = expanded.split(/\s+/).filter(Boolean);
  if (parts.length !== 5)
    throw new BackupError('USAGE', `invalid cron expression "${expression}": it has ${parts.length} fields, cron needs 5 (minute hour day-of-month month day-of-week, e.g. "0 2 * * *")`);
  const [minutes, hours, daysOfMonth, months, daysOfWeek] = parts.map((p, i) => parseField(p, FIELDS[i]!, expression)) as [boolean[], boolean[], boolean[], boolean[], boolean[]];
  if (daysOfWeek[7]) daysOfWeek[0] = true; // 7 is Sunday too
  const schedule: CronSchedule = {
    source,
    minutes,
    hours,
    daysOfMonth,
    months,
    daysOfWeek: daysOfWeek.slice(0, 7),
    dayOfMonthRestricted: !parts[2]!.startsWith('*'),
    dayOfWeekRestricted: !parts[4]!.startsWith('*'),
  };
  if (!nextRun(schedule, new Date(Date.UTC(2000, 0, 1))))
    throw new BackupError('USAGE', `invalid cron expression "${expression}": it never fires (no such date)`);
  return schedule;
}

function dayMatches(s: CronSchedule, t: Date): boolean {
  const dom = s.daysOfMonth[t.getUTCDate()]!;
  const dow = s.daysOfWeek[t.getUTCDay()]!;
  if (s.dayOfMonthRestricted && s.dayOfWeekRestricted) return dom || dow;
  return dom && dow;
}

/** The first time strictly after `after` (at a whole minute, UTC) the schedule fires; undefined if none within 10 years. */
export function nextRun(s: CronSchedule, after: Date): Date | undefined {
  let t = Math.floor(after.getTime() / 60_000) * 60_000 + 60_000;
  const limit = after.getTime() + 10 * 366 * 24 * 3600_000;
  while (t <= limit) {
    const d = new Date(t);
    const [y, mo, day, h] = [d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate(), d.getUTCHours()];
    if (!s.months[mo + 1]) t = Date.UTC(y, mo + 1, 1);
    else if (!dayMatches(s, d)) t = Date.UTC(y, mo, day + 1);
    else if (!s.hours[h]) t = Date.UTC(y, mo, day, h + 1);
    else if (!s.minutes[d.getUTCMinutes()]) t += 60_000;
    else return d;
  }
  return undefined;
}
