import { parseArgs } from 'node:util';
import type { CliCommand, CliIO } from '../cli/cli.ts';
import { configSchema } from '../config.ts';
import { figures } from '../../contract/figures.ts';
import { createBackup, DEFAULT_REDIS_DATA_DIR, resolveRedisDataDir, type CreateProgress } from './create.ts';
import { checkModelName, listAllBackups, listBackups, resolveArchive } from './list.ts';
import { pruneBackups } from './prune.ts';
import { verifyBackup } from './verify.ts';
import { BackupError, oneLine } from './errors.ts';
import { formatBytes } from './format.ts';
import { restoreBackup } from './restore.ts';

// `analytics-api backup create | list | verify | restore | prune`: the CLI over backup.ts and
// restore.ts. Every failure is one line on stderr and a non-zero exit: 1, or 2 for bad usage,
// 130 when interrupted.

const FOOTER = 'Times are UTC. Exit status: 0 success, 1 failure, 2 bad usage, 130 interrupted.';

const HELP = `usage: analytics-api backup <subcommand> [options]

subcommands:
  create                      archive the model store (and the Redis data folder) into --dest
  list                        the archives in --dest, newest first
  verify <archive>|--latest   re-read an archive and check every file against its manifest
  restore <archive>|--latest  verify, then replace <models-dir>/production (and the Redis folder)
  prune                       delete archives older than --retention-days (never the newest)

analytics-api backup <subcommand> --help shows its options and an example.
${FOOTER}`;

const DEFAULT_MODELS_DIR = configSchema.shape.MODELS_DIR.parse(undefined);
const DEST = '  --dest DIR            backup folder (env BACKUP_DIR)';
const MODELS_DIR = `  --models-dir DIR      model store root, the folder holding production/ (env MODELS_DIR,
                        default ${DEFAULT_MODELS_DIR})`;
const REDIS_DIR = `  --redis-dir DIR       Redis data folder (env REDIS_DATA_DIR; default ${DEFAULT_REDIS_DATA_DIR} when it
                        exists; "" for none)`;
const JSON_OUT = '  --json                machine-readable output on stdout';
const ARCHIVE = 'An <archive> is a path, or a file name in --dest.';

/** Each subcommand's help: usage, what it does, its options, an example. */
const SUB_HELP: Record<string, string> = {
  create: `usage: analytics-api backup create [--dest DIR] [--models-dir DIR] [--redis-dir DIR] [--model NAME [--include-redis]] [--json]

Archives <models-dir>/production and the Redis data folder into a new tar.gz in --dest
(analytics-backup-<time>.tar.gz), read back and verified before it gets its name. With --model
NAME only production/NAME (analytics-backup-NAME-<time>.tar.gz). At a terminal it shows its
progress on stderr.

options:
${DEST}
${MODELS_DIR}
${REDIS_DIR}
  --model NAME          archive only this model (no Redis data unless --include-redis)
  --include-redis       with --model: archive the Redis data folder too
  --json                the result as JSON on stdout (and no progress)
  -h, --help            this help

example:
  analytics-api backup create --models-dir data/models --dest data/backups`,
  list: `usage: analytics-api backup list [--dest DIR] [--model NAME] [--verify] [--json]

The whole-store archives in --dest, newest first; with --model NAME only NAME's.

options:
${DEST}
  --model NAME          only this model's archives
  --verify              verify every archive too (exit 1 if one fails)
${JSON_OUT}
  -h, --help            this help

example:
  analytics-api backup list --dest data/backups --verify`,
  verify: `usage: analytics-api backup verify (<archive> | --latest) [--dest DIR] [--model NAME] [--json]

Re-reads an archive and checks every file against its manifest. ${ARCHIVE}

options:
${DEST}
  --latest              the newest whole-store archive in --dest (with --model: NAME's)
  --model NAME          the archive must be NAME's
${JSON_OUT}
  -h, --help            this help

example:
  analytics-api backup verify --latest --dest data/backups`,
  restore: `usage: analytics-api backup restore (<archive> | --latest) [--dest DIR] [--models-dir DIR] [--redis-dir DIR] [--model NAME] [--json]

Verifies an archive, then replaces <models-dir>/production (and the Redis data folder) with its
contents; an archive of one model replaces only production/<model>. Restart the service (and
Redis) afterwards. ${ARCHIVE}

options:
${DEST}
${MODELS_DIR}
${REDIS_DIR}
  --latest              the newest whole-store archive in --dest (with --model: NAME's)
  --model NAME          the archive must be NAME's
${JSON_OUT}
  -h, --help            this help

example:
  analytics-api backup restore --latest --dest data/backups --models-dir data/models`,
  prune: `usage: analytics-api backup prune [--dest DIR] [--retention-days N] [--model NAME] [--dry-run] [--json]

Deletes the whole-store archives older than --retention-days, never the newest; with --model NAME
only NAME's archives (keeping NAME's newest), never another's.

options:
${DEST}
  --retention-days N    keep archives of the last N days (env BACKUP_RETENTION_DAYS,
                        default ${figures.backup.retentionDays})
  --model NAME          only this model's archives
  --dry-run             show what would be deleted
${JSON_OUT}
  -h, --help            this help

example:
  analytics-api backup prune --dest data/backups --retention-days 7 --dry-run`,
};

const OPTIONS = {
  dest: { type: 'string' },
  model: { type: 'string' },
  'include-redis': { type: 'boolean' },
  'models-dir': { type: 'string' },
  'redis-dir': { type: 'string' },
  'retention-days': { type: 'string' },
  latest: { type: 'boolean' },
  verify: { type: 'boolean' },
  'dry-run': { type: 'boolean' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

type OptionName = keyof typeof OPTIONS;

/** Which options each subcommand takes (besides --help). */
const ALLOWED: Record<string, OptionName[]> = {
  create: ['dest', 'models-dir', 'redis-dir', 'model', 'include-redis', 'json'],
  list: ['dest', 'model', 'verify', 'json'],
  verify: ['dest', 'model', 'latest', 'json'],
  restore: ['dest', 'models-dir', 'redis-dir', 'model', 'latest', 'json'],
  prune: ['dest', 'model', 'retention-days', 'dry-run', 'json'],
};
const TAKES_ARCHIVE = new Set(['verify', 'restore']);

type Values = { [K in OptionName]?: (typeof OPTIONS)[K]['type'] extends 'string' ? string : boolean };

interface Settings {
  dest: string | undefined;
  modelsDir: string;
  redisDir: string | undefined;
  retentionDays: number;
  /** --model: one model's archives; undefined: the whole store's. */
  model: string | undefined;
}

function settings(values: Values, env: NodeJS.ProcessEnv): Settings {
  const dest = values.dest ?? env.BACKUP_DIR;
  const modelsDir = values['models-dir'] ?? configSchema.shape.MODELS_DIR.parse(env.MODELS_DIR || undefined);
  const redisDir = resolveRedisDataDir(values['redis-dir'] ?? env.REDIS_DATA_DIR);
  const retentionText = values['retention-days'] ?? env.BACKUP_RETENTION_DAYS;
  let retentionDays: number = figures.backup.retentionDays;
  if (retentionText !== undefined && retentionText !== '') {
    if (!/^\d+$/.test(retentionText.trim()))
      throw new BackupError('USAGE', `--retention-days (or BACKUP_RETENTION_DAYS) must be a whole number of days, not "${retentionText}"`);
    retentionDays = Number(retentionText.trim());
  }
  if (modelsDir === '') throw new BackupError('USAGE', '--models-dir (or MODELS_DIR) is empty');
  const model = values.model;
  if (model !== undefined) checkModelName(model);
  if (values['include-redis'] && model === undefined)
    throw new BackupError('USAGE', '--include-redis goes with --model (a whole-store archive holds the Redis data folder whenever one is configured)');
  return { dest: dest || undefined, modelsDir, redisDir, retentionDays, model };
}

function needDest(s: Settings): string {
  if (!s.dest) throw new BackupError('USAGE', 'no backup folder: pass --dest DIR or set BACKUP_DIR');
  return s.dest;
}

const json = (value: unknown) => `${JSON.stringify(value, null, 2)}\n`;
const utc = (d: Date | string) =>
  new Date(d)
    .toISOString()
    .replace('T', ' ')
    .replace(/\.\d{3}Z$/, 'Z');
const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

const PHASES = ['hashing', 'writing', 'verifying'] as const;

/** "2/3 writing 12/40 files, 312 MiB of 514 MiB (61%)". */
function describeProgress(p: CreateProgress): string {
  const percent = p.totalBytes > 0 ? Math.floor((100 * p.bytes) / p.totalBytes) : 100;
  const files = p.phase === 'verifying' ? '' : ` ${p.files}/${p.totalFiles} files,`;
  return `${PHASES.indexOf(p.phase) + 1}/${PHASES.length} ${p.phase}${files} ${formatBytes(p.bytes)} of ${formatBytes(p.totalBytes)} (${percent}%)`;
}

/** One line on a terminal's stderr, redrawn at most every 200 ms, cleared before anything else is printed. */
function progressLine(io: CliIO): { show(text: string): void; clear(): void } {
  let last = 0;
  let shown = false;
  return {
    show(text) {
      const now = performance.now();
      if (shown && now - last < 200) return;
      last = now;
      shown = true;
      io.stderr(`\r\x1b[Kbackup create: ${text}`);
    },
    clear() {
      if (shown) io.stderr('\r\x1b[K');
      shown = false;
    },
  };
}

async function run(sub: string, positionals: string[], values: Values, io: CliIO): Promise<number> {
  const s = settings(values, io.env);
  const out = io.stdout;
  switch (sub) {
    case 'create': {
      const progress = io.stderrIsTerminal && !values.json ? progressLine(io) : undefined;
      let r;
      try {
        r = await createBackup({
          dest: needDest(s),
          modelsDir: s.modelsDir,
          redisDir: s.redisDir,
          model: s.model,
          includeRedis: values['include-redis'],
          signal: io.signal,
          onProgress: progress && ((p) => progress.show(describeProgress(p))),
        });
      } finally {
        progress?.clear();
      }
      for (const w of r.warnings) io.stderr(`warning: ${w}\n`);
      if (values.json) out(json(r));
      else
        out(
          `created ${r.path}: ${r.files} files, ${formatBytes(r.bytes)} of data, ${formatBytes(r.sizeBytes)} archive, verified, ${seconds(r.durationMs)}` +
            ` (${r.sources.map((src) => `${src.archivePath}/ from ${src.path}`).join(', ')})\n`,
        );
      return 0;
    }
    case 'list': {
      const dest = needDest(s);
      const archives = await listBackups(dest, { model: s.model });
      const rows: Array<{ name: string; path: string; created: string; sizeBytes: number; model?: string; verified?: boolean; error?: string }> = [];
      for (const a of archives) {
        const row: (typeof rows)[number] = {
          name: a.name,
          path: a.path,
          created: a.created.toISOString(),
          sizeBytes: a.sizeBytes,
          ...(a.model !== undefined ? { model: a.model } : {}),
        };
        if (values.verify) {
          try {
            await verifyBackup(a.path, { model: s.model });
            row.verified = true;
          } catch (err) {
            row.verified = false;
            row.error = oneLine(err);
          }
        }
        rows.push(row);
      }
      if (values.json) out(json(rows));
      else if (rows.length === 0) out(s.model === undefined ? `no archives in ${s.dest}\n` : `no archives of the model ${s.model} in ${s.dest}\n`);
      else {
        const lines = rows.map((r) => [utc(r.created), formatBytes(r.sizeBytes), r.name, ...(values.verify ? [r.verified ? 'ok' : `FAILED: ${r.error}`] : [])]);
        const header = ['CREATED (UTC)', 'SIZE', 'NAME', ...(values.verify ? ['VERIFIED'] : [])];
        const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => (i < l.length - 1 ? l[i]!.length : 0))));
        for (const l of [header, ...lines]) out(`${l.map((c, i) => (i < l.length - 1 ? c.padEnd(widths[i]!) : c)).join('  ')}\n`);
      }
      if (!values.json && s.model === undefined) {
        const models = [...new Set((await listAllBackups(dest)).flatMap((a) => (a.model !== undefined ? [a.model] : [])))].sort();
        if (models.length) out(`(per-model archives not listed, of ${models.join(', ')}: pass --model NAME)\n`);
      }
      return rows.some((r) => r.verified === false) ? 1 : 0;
    }
    case 'verify': {
      const path = await resolveArchive(positionals[0], { dest: s.dest, latest: values.latest, model: s.model });
      const r = await verifyBackup(path, { model: s.model });
      if (values.json) out(json({ ...r, verified: true }));
      else
        out(
          `ok ${r.path}: ${r.model !== undefined ? `model ${r.model}, ` : ''}${r.files} files, ${formatBytes(r.bytes)} of data, created ${utc(r.created)}, every checksum matches\n`,
        );
      return 0;
    }
    case 'restore': {
      const path = await resolveArchive(positionals[0], { dest: s.dest, latest: values.latest, model: s.model });
      const r = await restoreBackup({ archive: path, modelsDir: s.modelsDir, redisDir: s.redisDir, model: s.model, signal: io.signal });
      if (values.json) out(json(r));
      else {
        out(`restored ${r.archive} (${r.model !== undefined ? `model ${r.model} only, ` : ''}created ${utc(r.created)}):\n`);
        for (const p of r.restored) out(`  ${p.name}: ${p.files} files, ${formatBytes(p.bytes)} into ${p.target}\n`);
        for (const n of r.notes) out(`  note: ${n}\n`);
        out('  restart the service (and Redis, if its data was restored) so they load the restored data\n');
      }
      return 0;
    }
    case 'prune': {
      const r = await pruneBackups({ dest: needDest(s), retentionDays: s.retentionDays, dryRun: values['dry-run'], model: s.model });
      if (values.json)
        out(
          json({
            ...(s.model !== undefined ? { model: s.model } : {}),
            cutoff: r.cutoff.toISOString(),
            retentionDays: s.retentionDays,
            dryRun: !!values['dry-run'],
            kept: r.kept.map((a) => a.name),
            deleted: r.deleted.map((a) => a.name),
          }),
        );
      else {
        for (const a of r.deleted) out(`${values['dry-run'] ? 'would delete' : 'deleted'} ${a.name}\n`);
        out(
          `kept ${r.kept.length} archive${r.kept.length === 1 ? '' : 's'}${s.model !== undefined ? ` of the model ${s.model}` : ''} (retention ${s.retentionDays} days, cutoff ${utc(r.cutoff)}${r.kept[0] ? `, newest ${r.kept[0].name}` : ''})\n`,
        );
      }
      return 0;
    }
  }
  throw new BackupError('USAGE', `unknown subcommand "${sub}"`);
}

export const backupCommand: CliCommand = {
  summary: 'create, list, verify, restore and prune backups of the model store and Redis data',
  async run(args, io) {
    const sub = args[0];
    const prefix = `analytics-api backup${sub && !sub.startsWith('-') ? ` ${sub}` : ''}`;
    try {
      if (sub === undefined || sub === '-h' || sub === '--help' || sub === 'help') {
        (sub === undefined ? io.stderr : io.stdout)(`${HELP}\n`);
        return sub === undefined ? 2 : 0;
      }
      if (!(sub in ALLOWED)) throw new BackupError('USAGE', `unknown subcommand "${sub}"; use create, list, verify, restore or prune`);
      let parsed;
      try {
        parsed = parseArgs({ args: args.slice(1), options: OPTIONS, allowPositionals: true, strict: true });
      } catch (err) {
        throw new BackupError('USAGE', (err as Error).message.replace(/\.?\s*To specify a positional.*$/s, ''));
      }
      const values = parsed.values as Values;
      if (values.help) {
        io.stdout(`${SUB_HELP[sub]}\n\n${FOOTER}\n`);
        return 0;
      }
      for (const name of Object.keys(values) as OptionName[])
        if (name !== 'help' && !ALLOWED[sub]!.includes(name)) throw new BackupError('USAGE', `--${name} is not an option of "backup ${sub}"`);
      const maxPositionals = TAKES_ARCHIVE.has(sub) ? 1 : 0;
      if (parsed.positionals.length > maxPositionals) throw new BackupError('USAGE', `unexpected argument "${parsed.positionals[maxPositionals]}"`);
      return await run(sub, parsed.positionals, values, io);
    } catch (err) {
      io.stderr(`${prefix}: ${oneLine(err)}\n`);
      if (err instanceof BackupError) return err.code === 'USAGE' ? 2 : err.code === 'INTERRUPTED' ? 130 : 1;
      return 1;
    }
  },
};
