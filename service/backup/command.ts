import { parseArgs } from 'node:util';
import type { CliCommand, CliIO } from '../cli/cli.ts';
import { configSchema } from '../config.ts';
import { figures } from '../../contract/figures.ts';
import { createBackup, DEFAULT_REDIS_DATA_DIR, resolveRedisDataDir } from './create.ts';
import { checkModelName, listAllBackups, listBackups, resolveArchive } from './list.ts';
import { pruneBackups } from './prune.ts';
import { verifyBackup } from './verify.ts';
import { BackupError, oneLine } from './errors.ts';
import { formatBytes } from './format.ts';
import { restoreBackup } from './restore.ts';

// `analytics-api backup create | list | verify | restore | prune`: the CLI over backup.ts and
// restore.ts. Every failure is one line on stderr and a non-zero exit: 1, or 2 for bad usage,
// 130 when interrupted.

const HELP = `usage: analytics-api backup <subcommand> [options]

subcommands:
  create                      archive the model store (and the Redis data folder) into --dest;
                              with --model NAME only production/NAME (no Redis data unless
                              --include-redis), named analytics-backup-NAME-<time>.tar.gz
  list                        the archives in --dest, newest first
  verify <archive>|--latest   re-read an archive and check every file against its manifest
  restore <archive>|--latest  verify, then replace <models-dir>/production (and the Redis folder);
                              an archive of one model replaces only production/<model>
  prune                       delete archives older than --retention-days (never the newest)

list, prune and --latest consider only whole-store archives, unless --model NAME is given: then
only NAME's archives (prune keeps NAME's newest, and never touches other archives).

options:
  --dest DIR            backup folder (env BACKUP_DIR)
  --model NAME          one model: create archives only it; list/prune/--latest take only its
                        archives; verify/restore of a named archive check that it is NAME's
  --include-redis       create --model: archive the Redis data folder too
  --models-dir DIR      model store root, the folder holding production/ (env MODELS_DIR,
                        default ${configSchema.shape.MODELS_DIR.parse(undefined)})
  --redis-dir DIR       Redis data folder (env REDIS_DATA_DIR; default ${DEFAULT_REDIS_DATA_DIR} when it
                        exists; "" for none)
  --retention-days N    prune: keep archives of the last N days (env BACKUP_RETENTION_DAYS,
                        default ${figures.backup.retentionDays})
  --latest              verify/restore: the newest archive in --dest
  --verify              list: verify every archive too (exit 1 if one fails)
  --dry-run             prune: show what would be deleted
  --json                machine-readable output on stdout
  -h, --help            this help

An <archive> is a path, or a file name in --dest. Times are UTC.
Exit status: 0 success, 1 failure, 2 bad usage, 130 interrupted.`;

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

async function run(sub: string, positionals: string[], values: Values, io: CliIO): Promise<number> {
  const s = settings(values, io.env);
  const out = io.stdout;
  switch (sub) {
    case 'create': {
      const r = await createBackup({
        dest: needDest(s),
        modelsDir: s.modelsDir,
        redisDir: s.redisDir,
        model: s.model,
        includeRedis: values['include-redis'],
        signal: io.signal,
      });
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
        io.stdout(`${HELP}\n`);
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
