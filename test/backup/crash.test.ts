import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdir, readdir, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { oneLineOf, runCli, sandbox, snapshot, startCli, waitFor } from './helpers.ts';

// A backup killed with SIGKILL while it writes leaves only a hidden .partial file: `list` shows no
// archive, `verify --latest` and `restore --latest` find none, and the next `create` (once the
// partial is stale) removes it. The child is frozen with SIGSTOP the moment its partial file has
// data, so the test knows the kill lands mid-write, not after the archive was finished.

test('a backup killed part-way leaves no listed archive', { timeout: 120_000 }, async (t) => {
  const root = await sandbox(t);
  const store = join(root, 'store');
  const dest = join(root, 'backups');
  // A fake model with 32 MiB of incompressible bytes: gzip needs a good second for it.
  const dir = join(store, 'production', 'huge', '1');
  await mkdir(dir, { recursive: true });
  for (let i = 0; i < 8; i++) await writeFile(join(dir, `shard-${i}.bin`), randomBytes(4 * 1024 * 1024));
  await mkdir(dest);
  const env = { MODELS_DIR: store, BACKUP_DIR: dest };

  const child = startCli(['backup', 'create'], env);
  const exited = once(child, 'close');
  const partials = async () => (await readdir(dest)).filter((n) => n.endsWith('.partial'));
  await waitFor(async () => {
    for (const name of await partials()) if ((await stat(join(dest, name)).catch(() => undefined))?.size) return true;
    return false;
  }, 'the partial archive to get data');
  child.kill('SIGSTOP');
  t.after(() => void child.kill('SIGKILL'));
  const frozen = await readdir(dest);
  assert.deepEqual(
    frozen.filter((n) => n.endsWith('.tar.gz')),
    [],
    'the backup finished before it could be killed',
  );
  child.kill('SIGKILL');
  const [, signal] = (await exited) as [number | null, NodeJS.Signals | null];
  assert.equal(signal, 'SIGKILL');

  const left = await partials();
  assert.equal(left.length, 1, `left behind: ${(await readdir(dest)).join(', ')}`);
  assert.match(left[0]!, /^\.analytics-backup-\d{8}T\d{6}\.\d{3}Z-\d+-\w+\.tar\.gz\.partial$/);

  const listed = await runCli(['backup', 'list'], env);
  assert.equal(listed.code, 0, listed.stderr);
  assert.equal(listed.stdout, `no archives in ${dest}\n`);
  const listedJson = await runCli(['backup', 'list', '--json'], env);
  assert.deepEqual(JSON.parse(listedJson.stdout), []);
  const storeBefore = await snapshot(store);
  for (const cmd of ['verify', 'restore']) {
    const r = await runCli(['backup', cmd, '--latest'], env);
    assert.equal(r.code, 1, `${cmd}: ${r.stdout}${r.stderr}`);
    assert.match(oneLineOf(r.stderr), /there are no archives in /);
  }
  const r = await runCli(['backup', 'restore', join(dest, left[0]!)], env);
  assert.equal(r.code, 1);
  assert.match(oneLineOf(r.stderr), /unfinished backup \(\.partial\)/);
  assert.deepEqual(await snapshot(store), storeBefore);

  // A fresh partial is someone's backup in progress and stays; one idle for over an hour is removed.
  const partialPath = join(dest, left[0]!);
  const created = await runCli(['backup', 'create', '--json'], env);
  assert.equal(created.code, 0, created.stderr);
  assert.deepEqual(await partials(), [left[0]]);
  const old = new Date(Date.now() - 2 * 3600_000);
  await utimes(partialPath, old, old);
  const again = await runCli(['backup', 'create', '--json'], env);
  assert.equal(again.code, 0, again.stderr);
  assert.deepEqual(await partials(), []);
  const after = await runCli(['backup', 'list', '--json', '--verify'], env);
  assert.equal(after.code, 0, after.stderr);
  const rows = JSON.parse(after.stdout) as Array<{ name: string; verified: boolean }>;
  assert.equal(rows.length, 2);
  assert.ok(rows.every((row) => row.verified));
  t.diagnostic(`32 MiB of random data: ${(JSON.parse(again.stdout) as { durationMs: number }).durationMs.toFixed(0)} ms to create and verify`);
});
