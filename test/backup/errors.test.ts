import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { ArchiveWriter } from '../../service/backup/archive.ts';
import { BackupError, destinationError } from '../../service/backup/errors.ts';
import { oneLineOf, runCli, sandbox, snapshot } from './helpers.ts';

// Failures a script must be able to trust: a non-zero exit and one clear line on stderr.

async function storeIn(root: string): Promise<string> {
  const store = join(root, 'store');
  await mkdir(join(store, 'production', 'm', '1'), { recursive: true });
  await writeFile(join(store, 'production', 'm', '1', 'model.onnx'), 'model');
  return store;
}

test('a missing destination, or one that is a file, fails create with a clear error', { timeout: 60_000 }, async (t) => {
  const root = await sandbox(t);
  const store = await storeIn(root);
  const missing = join(root, 'no-such-folder');
  const r = await runCli(['backup', 'create', '--dest', missing], { MODELS_DIR: store });
  assert.equal(r.code, 1);
  assert.equal(
    oneLineOf(r.stderr),
    `analytics-api backup create: the backup folder ${missing} does not exist; create it or pass another --dest (env BACKUP_DIR)`,
  );
  assert.equal(r.stdout, '');
  assert.deepEqual((await readdir(root)).sort(), ['store']);

  const file = join(root, 'a-file');
  await writeFile(file, 'x');
  const f = await runCli(['backup', 'create'], { MODELS_DIR: store, BACKUP_DIR: file });
  assert.equal(f.code, 1);
  assert.match(oneLineOf(f.stderr), /the backup folder .*a-file is not a folder/);

  for (const sub of ['list', 'prune']) {
    const l = await runCli(['backup', sub, '--dest', missing], {});
    assert.equal(l.code, 1, sub);
    assert.match(oneLineOf(l.stderr), /does not exist/);
  }
});

test('an unwritable destination fails create with a clear error and leaves nothing', { timeout: 60_000 }, async (t) => {
  const root = await sandbox(t);
  const store = await storeIn(root);
  const dest = join(root, 'read-only');
  await mkdir(dest);
  // root ignores permission bits, so as root the CLI runs as the unprivileged user "nobody".
  const asRoot = process.getuid?.() === 0;
  await chmod(root, 0o755);
  for (const d of ['store', 'store/production', 'store/production/m', 'store/production/m/1']) await chmod(join(root, d), 0o755);
  await chmod(dest, 0o555);
  t.after(() => chmod(dest, 0o755).catch(() => undefined));
  const before = await snapshot(root);
  const r = await runCli(['backup', 'create'], { MODELS_DIR: store, BACKUP_DIR: dest }, asRoot ? { uid: 65534, gid: 65534 } : undefined);
  assert.equal(r.code, 1, r.stdout + r.stderr);
  assert.equal(
    oneLineOf(r.stderr),
    `analytics-api backup create: the backup folder ${dest} is not writable (EACCES); fix its permissions or pass another --dest`,
  );
  assert.deepEqual(await snapshot(root), before);
});

test('bad usage exits 2 with one line; a missing store exits 1', { timeout: 60_000 }, async (t) => {
  const root = await sandbox(t);
  const store = await storeIn(root);
  const dest = join(root, 'backups');
  await mkdir(dest);
  const cases: Array<[string[], Record<string, string>, RegExp]> = [
    [['backup', 'create'], { MODELS_DIR: store }, /no backup folder: pass --dest DIR or set BACKUP_DIR/],
    [['backup', 'frobnicate'], {}, /unknown subcommand "frobnicate"/],
    [['backup', 'create', '--latest'], { BACKUP_DIR: dest }, /--latest is not an option of "backup create"/],
    [['backup', 'create', '--bogus'], { BACKUP_DIR: dest }, /Unknown option '--bogus'/],
    [['backup', 'prune', '--retention-days', 'seven'], { BACKUP_DIR: dest }, /must be a whole number of days, not "seven"/],
    [['backup', 'verify'], { BACKUP_DIR: dest }, /name an archive .* or pass --latest/],
    [['backup', 'verify', 'a', 'b'], { BACKUP_DIR: dest }, /unexpected argument "b"/],
    [['backup', 'verify', 'a.tar.gz', '--latest'], { BACKUP_DIR: dest }, /not both/],
    [['nope'], {}, /unknown command "nope"/],
  ];
  for (const [args, env, reason] of cases) {
    const r = await runCli(args, env);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(oneLineOf(r.stderr), reason, args.join(' '));
  }
  const noStore = await runCli(['backup', 'create'], { MODELS_DIR: join(root, 'nowhere'), BACKUP_DIR: dest });
  assert.equal(noStore.code, 1);
  assert.match(oneLineOf(noStore.stderr), /the model store folder .*nowhere\/production does not exist; set MODELS_DIR/);
  const noRedis = await runCli(['backup', 'create'], { MODELS_DIR: store, BACKUP_DIR: dest, REDIS_DATA_DIR: join(root, 'no-redis') });
  assert.equal(noRedis.code, 1);
  assert.match(oneLineOf(noRedis.stderr), /the Redis data folder .*no-redis does not exist/);
  const inside = await runCli(['backup', 'create', '--dest', join(store, 'production', 'm')], { MODELS_DIR: store });
  assert.equal(inside.code, 2);
  assert.match(oneLineOf(inside.stderr), /is inside .*production, which is being backed up/);
  const notFound = await runCli(['backup', 'verify', 'analytics-backup-20200101T000000Z.tar.gz'], { BACKUP_DIR: dest });
  assert.equal(notFound.code, 1);
  assert.match(oneLineOf(notFound.stderr), /does not exist \(nor in /);
  assert.deepEqual(await readdir(dest), []);
  const help = await runCli(['backup', '--help'], {});
  assert.equal(help.code, 0);
  assert.match(help.stdout, /usage: analytics-api backup <subcommand>/);
});

test('a full disk (ENOSPC) stops the archive writer with that error, and nothing is left unhandled', async () => {
  let written = 0;
  const full = new Writable({
    write(chunk: Buffer, _enc, cb) {
      written += chunk.length;
      cb(written > 256 * 1024 ? Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' }) : null);
    },
  });
  const writer = new ArchiveWriter(full);
  const data = randomBytes(4 * 1024 * 1024);
  const st = { mode: 0o644, mtime: new Date(), uid: 0, gid: 0 };
  const unhandled: unknown[] = [];
  const onUnhandled = (err: unknown) => void unhandled.push(err);
  process.on('unhandledRejection', onUnhandled);
  try {
    await assert.rejects(
      (async () => {
        for (let i = 0; i < 4; i++)
          await writer.addFile(`models/production/m/1/part-${i}`, data.length, st, async (write) => {
            for (let o = 0; o < data.length; o += 65536) await write(data.subarray(o, o + 65536));
          });
        await writer.finish();
      })(),
      (err: unknown) => (err as NodeJS.ErrnoException).code === 'ENOSPC',
    );
    assert.equal((writer.outputError as NodeJS.ErrnoException).code, 'ENOSPC');
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(unhandled, []);
  } finally {
    process.off('unhandledRejection', onUnhandled);
  }
});

test('a full disk (ENOSPC) is reported as such', () => {
  const err = destinationError(Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' }), '/backups');
  assert.ok(err instanceof BackupError);
  assert.equal(err.code, 'NO_SPACE');
  assert.equal(
    err.message,
    'no space left in the backup folder /backups (ENOSPC); the unfinished archive was removed; free space, prune old archives or pass another --dest',
  );
});
