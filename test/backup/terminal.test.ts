import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { stripVTControlCharacters } from 'node:util';
import { runCommand } from '../helpers/processes.ts';
import { BIN, ROOT, cliEnv, runCli, sandbox } from './helpers.ts';

// What a person at a terminal sees of the backup commands: progress while `backup create` runs
// (stderr, only at a terminal and without --json), and each subcommand's own --help.

/** A store of `files` files of `mib` MiB each in production/big/1. */
async function store(root: string, files: number, mib: number): Promise<string> {
  const dir = join(root, 'store', 'production', 'big', '1');
  await mkdir(dir, { recursive: true });
  for (let i = 0; i < files; i++) await writeFile(join(dir, `part-${i}`), randomBytes(mib * 1024 * 1024));
  return join(root, 'store');
}

/** The CLI on a pseudo-terminal (script(1)): what the terminal got, stdout and stderr together. */
async function atTerminal(args: string[], env: Record<string, string>) {
  const quoted = [process.execPath, BIN, ...args].map((a) => `'${a.replaceAll("'", `'\\''`)}'`).join(' ');
  return runCommand('script', ['-q', '-e', '-c', quoted, '/dev/null'], { cwd: ROOT, env: cliEnv(env), timeoutMs: 120_000 });
}

test('backup create shows files and bytes done of the total at a terminal, and nothing without one', { timeout: 180_000 }, async (t) => {
  const root = await sandbox(t);
  const models = await store(root, 8, 8); // 64 MiB
  const dest = join(root, 'backups');
  await mkdir(dest);

  const tty = await atTerminal(['backup', 'create', '--models-dir', models, '--dest', dest], { REDIS_DATA_DIR: '' });
  assert.equal(tty.code, 0, tty.stdout);
  const screens = stripVTControlCharacters(tty.stdout)
    .split(/\r\n?|\n/)
    .filter(Boolean);
  const progress = screens.filter((l) => l.startsWith('backup create: '));
  for (const phase of ['1/3 hashing', '2/3 writing', '3/3 verifying'])
    assert.ok(
      progress.some((l) => l.includes(phase)),
      `${phase} in ${progress.join(' | ')}`,
    );
  assert.ok(
    progress.some((l) => /^backup create: 2\/3 writing \d+\/8 files, [\d.]+ MiB of 64\.0 MiB \(\d+%\)$/.test(l)),
    progress.join('\n'),
  );
  // The progress line is cleared: the result stands alone on its line.
  assert.match(screens.at(-1)!, /^created .*analytics-backup-\d{8}T\d{6}Z\.tar\.gz: 8 files, 64\.0 MiB of data/);

  const json = await atTerminal(['backup', 'create', '--models-dir', models, '--dest', dest, '--json'], { REDIS_DATA_DIR: '' });
  assert.equal(json.code, 0, json.stdout);
  assert.doesNotMatch(json.stdout, /backup create: /);
  assert.equal(JSON.parse(json.stdout.replaceAll('\r\n', '\n')).files, 8);

  // Piped (cron, a Job, a script): only the result.
  const piped = await runCli(['backup', 'create', '--models-dir', models, '--dest', dest], { REDIS_DATA_DIR: '' }, { cwd: ROOT });
  assert.equal(piped.code, 0, piped.stderr);
  assert.equal(piped.stderr, '');
  assert.match(piped.stdout, /^created .*: 8 files/);
  assert.equal((await readdir(dest)).filter((n) => n.endsWith('.tar.gz')).length, 3);
});

test('each backup subcommand has its own --help: usage, options it takes, an example', async (t) => {
  const root = await sandbox(t);
  const env = { MODELS_DIR: join(root, 'no-store'), BACKUP_DIR: join(root, 'no-backups') };
  const overview = await runCli(['backup', '--help'], env);
  assert.equal(overview.code, 0);
  assert.match(overview.stdout, /analytics-api backup <subcommand> --help/);
  const taken: Record<string, string[]> = {};
  for (const sub of ['create', 'list', 'verify', 'restore', 'prune']) {
    const help = await runCli(['backup', sub, '--help'], env);
    assert.equal(help.code, 0, help.stderr);
    assert.equal(help.stderr, '');
    assert.match(help.stdout, new RegExp(`^usage: analytics-api backup ${sub} `));
    assert.match(help.stdout, new RegExp(`\\nexample:\\n  analytics-api backup ${sub} `));
    assert.match(help.stdout, /Exit status: 0 success/);
    const options = /\noptions:\n([\s\S]*?)\n\n/.exec(help.stdout)?.[1] ?? '';
    taken[sub] = [...options.matchAll(/^ {2}(?:-h, )?--([a-z-]+)/gm)].map((m) => m[1]!);
    // Every option the help names, the subcommand takes (a value where the help shows one).
    for (const m of options.matchAll(/^ {2}--([a-z-]+)( [A-Z]+)?/gm)) {
      const args = ['backup', sub, `--${m[1]}`, ...(m[2] ? [join(root, 'nowhere')] : [])];
      const r = await runCli(args, env);
      assert.doesNotMatch(r.stderr, /is not an option|Unknown option/, args.join(' '));
    }
  }
  assert.ok(taken.create!.includes('include-redis') && !taken.create!.includes('retention-days'), taken.create!.join(' '));
  assert.ok(taken.prune!.includes('retention-days') && taken.prune!.includes('dry-run') && !taken.prune!.includes('models-dir'));
  assert.ok(taken.verify!.includes('latest') && !taken.list!.includes('latest'));
  // An option another subcommand takes is refused by name.
  const wrong = await runCli(['backup', 'create', '--retention-days', '3'], env);
  assert.equal(wrong.code, 2);
  assert.match(wrong.stderr, /--retention-days is not an option of "backup create"/);
});
