import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { copyFile, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { checkEntry } from '../../service/backup/archive.ts';
import { BackupError } from '../../service/backup/errors.ts';
import { craftArchive, manifestFor, oneLineOf, runCli, sandbox, snapshot, type CraftedEntry } from './helpers.ts';

// Damaged and hostile archives: `verify` and `restore` fail with one clear line and a non-zero
// exit, and nothing anywhere is written (the snapshots include folder mtimes, so even a folder
// created and removed again would show).

/** A sandbox with a live store (and Redis folder) that must survive every failed restore. */
async function liveSetup(t: Parameters<typeof sandbox>[0]) {
  const root = await sandbox(t);
  const store = join(root, 'store');
  const redis = join(root, 'redis');
  const dest = join(root, 'backups');
  await mkdir(join(store, 'production', 'big', '1'), { recursive: true });
  for (let i = 0; i < 4; i++) await writeFile(join(store, 'production', 'big', '1', `part-${i}.bin`), randomBytes(256 * 1024));
  await writeFile(join(store, 'production', 'big', 'history.jsonl'), '{"event":"uploaded","version":"1"}\n');
  await mkdir(redis);
  await writeFile(join(redis, 'dump.rdb'), randomBytes(64 * 1024));
  await mkdir(dest);
  const env = { MODELS_DIR: store, BACKUP_DIR: dest, REDIS_DATA_DIR: redis };
  return { root, store, redis, dest, env };
}

test('a corrupted archive fails verify and restore, and the live store is untouched', { timeout: 120_000 }, async (t) => {
  const { root, dest, env } = await liveSetup(t);
  const created = await runCli(['backup', 'create', '--json'], env);
  assert.equal(created.code, 0, created.stderr);
  const good = (JSON.parse(created.stdout) as { path: string }).path;
  const bytes = await readFile(good);

  // Bytes flipped in the middle; cut in half; not gzip at all.
  const flipped = Buffer.from(bytes);
  for (let i = 0; i < 64; i++) flipped[Math.floor(flipped.length / 2) + i]! ^= 0xff;
  const damaged = join(root, 'flipped.tar.gz');
  await writeFile(damaged, flipped);
  const truncated = join(root, 'truncated.tar.gz');
  await writeFile(truncated, bytes.subarray(0, Math.floor(bytes.length / 2)));
  const notGzip = join(root, 'plain.tar.gz');
  await writeFile(notGzip, 'this is not an archive');
  // Valid gzip and tar, but a file's bytes differ from its manifest entry.
  const mismatch = join(root, 'mismatch.tar.gz');
  await craftArchive(
    mismatch,
    [{ path: 'models/production/m/1/model.onnx', data: 'tampered!' }],
    manifestFor([{ path: 'models/production/m/1/model.onnx', data: 'original!' }]),
  );
  // An entry the manifest does not list, and a manifest entry with no file.
  const extra = join(root, 'extra.tar.gz');
  await craftArchive(
    extra,
    [
      { path: 'models/production/m/1/model.onnx', data: 'a' },
      { path: 'models/production/m/1/x', data: 'b' },
    ],
    manifestFor([{ path: 'models/production/m/1/model.onnx', data: 'a' }]),
  );
  const missing = join(root, 'missing.tar.gz');
  await craftArchive(
    missing,
    [{ path: 'models/production/m/1/model.onnx', data: 'a' }],
    manifestFor([
      { path: 'models/production/m/1/model.onnx', data: 'a' },
      { path: 'models/production/m/1/gone', data: 'b' },
    ]),
  );
  const noManifest = join(root, 'no-manifest.tar.gz');
  await craftArchive(noManifest, [{ path: 'models/production/m/1/model.onnx', data: 'a' }]);
  const badManifest = join(root, 'bad-manifest.tar.gz');
  await craftArchive(badManifest, [], '{"format": "something else"}');

  const cases: Array<[string, RegExp]> = [
    [damaged, /damaged|checksum mismatch/],
    [truncated, /damaged|unexpected end/],
    [notGzip, /not a gzip file/],
    [mismatch, /checksum mismatch for models\/production\/m\/1\/model\.onnx/],
    [extra, /"models\/production\/m\/1\/x" is not in MANIFEST\.json/],
    [missing, /"models\/production\/m\/1\/gone" is in MANIFEST\.json but not in the archive/],
    [noManifest, /first entry is "models\/production\/m\/1\/model\.onnx", not MANIFEST\.json/],
    [badManifest, /not an analytics-api-backup manifest/],
  ];
  const before = await snapshot(root);
  for (const [file, reason] of cases) {
    const verify = await runCli(['backup', 'verify', file], env);
    assert.equal(verify.code, 1, `verify ${file}: ${verify.stdout}${verify.stderr}`);
    assert.match(oneLineOf(verify.stderr), reason);
    assert.equal(verify.stdout, '');
    const restore = await runCli(['backup', 'restore', file], env);
    assert.equal(restore.code, 1, `restore ${file}: ${restore.stdout}${restore.stderr}`);
    assert.match(oneLineOf(restore.stderr), reason);
    assert.deepEqual(await snapshot(root), before, `restore of ${file} changed something`);
  }

  // list --verify marks the damaged one (copied into the backup folder) and exits 1.
  await copyFile(damaged, join(dest, 'analytics-backup-20200101T000000Z.tar.gz'));
  const listed = await runCli(['backup', 'list', '--verify', '--json'], env);
  assert.equal(listed.code, 1);
  const rows = JSON.parse(listed.stdout) as Array<{ name: string; verified: boolean }>;
  assert.deepEqual(
    rows.map((r) => [r.name, r.verified]),
    [
      [(JSON.parse(created.stdout) as { name: string }).name, true],
      ['analytics-backup-20200101T000000Z.tar.gz', false],
    ],
  );
});

test('entries that could write outside the store are refused and nothing is written anywhere', { timeout: 120_000 }, async (t) => {
  const { root, env } = await liveSetup(t);
  const ok = { path: 'models/production/m/1/model.onnx', data: 'model bytes' };
  // Each hostile entry comes after a harmless one, so a restore that extracted as it read would
  // already have written something.
  const hostile: Array<[string, CraftedEntry, RegExp]> = [
    ['dotdot', { path: 'models/production/../../escaped.txt', data: 'x' }, /climbs out with "\.\."/],
    ['dotdot-top', { path: '../escaped.txt', data: 'x' }, /climbs out with "\.\."/],
    ['absolute', { path: join(root, 'absolute.txt'), data: 'x' }, /absolute path/],
    ['symlink', { path: 'models/production/m/link', type: 'SymbolicLink', linkpath: root }, /symbolic link/],
    ['symlink-relative', { path: 'redis/link', type: 'SymbolicLink', linkpath: '../../..' }, /symbolic link/],
    ['hardlink', { path: 'models/production/m/hard', type: 'Link', linkpath: 'models/production/m/1/model.onnx' }, /hard link/],
    ['device', { path: 'redis/null', type: 'CharacterDevice' }, /CharacterDevice entry/],
    ['outside-layout', { path: 'etc/cron.d/job', data: 'x' }, /outside MANIFEST\.json, models\/production\/ and redis\//],
    ['store-root', { path: 'models/.staging/x', data: 'x' }, /outside MANIFEST\.json/],
  ];
  const before = await snapshot(root);
  for (const [name, entry, reason] of hostile) {
    const file = join(root, `${name}.tar.gz`);
    await craftArchive(file, [ok, entry], manifestFor([ok]));
    const snap = { ...(await snapshot(root)) };
    for (const cmd of ['verify', 'restore']) {
      const r = await runCli(['backup', cmd, file], env);
      assert.equal(r.code, 1, `${cmd} ${name}: ${r.stdout}${r.stderr}`);
      assert.match(oneLineOf(r.stderr), reason, `${cmd} ${name}`);
    }
    assert.deepEqual(await snapshot(root), snap, `${name}: something was written`);
  }
  // A manifest naming a hostile path is refused before any entry is looked at.
  const file = join(root, 'manifest-dotdot.tar.gz');
  await craftArchive(file, [ok], manifestFor([ok, { path: 'models/production/../../x', data: 'x' }]));
  const r = await runCli(['backup', 'restore', file], env);
  assert.equal(r.code, 1);
  assert.match(oneLineOf(r.stderr), /climbs out/);
  // The live store and Redis folder are as they were (the crafted archives are the only new files).
  const after = await snapshot(root);
  for (const key of Object.keys(after)) if (key.endsWith('.tar.gz')) delete after[key];
  delete after['.'];
  const expected = { ...before };
  delete expected['.'];
  assert.deepEqual(after, expected);
  assert.deepEqual((await readdir(root)).filter((n) => !n.endsWith('.tar.gz')).sort(), ['backups', 'redis', 'store']);
});

test('checkEntry: the layout rules', () => {
  for (const [path, type] of [
    ['MANIFEST.json', 'File'],
    ['models/production/a/1/model.onnx', 'File'],
    ['models/production/a/', 'Directory'],
    ['models/production', 'Directory'],
    ['redis/appendonlydir/x.aof', 'File'],
  ] as const)
    assert.doesNotThrow(() => checkEntry(path, type), path);
  for (const [path, type] of [
    ['models/production/a/../../../x', 'File'],
    ['/etc/passwd', 'File'],
    ['C:/x', 'File'],
    ['models/production/a\\..\\x', 'File'],
    ['models/production//x', 'File'],
    ['models/production/./x', 'File'],
    ['models/production', 'File'],
    ['redis', 'File'],
    ['MANIFEST.json', 'Directory'],
    ['models/x', 'File'],
    ['redisx/y', 'File'],
    ['models/production/l', 'SymbolicLink'],
    ['models/production/l', 'Link'],
    ['redis/fifo', 'FIFO'],
    ['redis/dev', 'BlockDevice'],
  ] as const)
    assert.throws(
      () => checkEntry(path, type),
      (err: unknown) => err instanceof BackupError && err.code === 'UNSAFE',
      `${type} ${path}`,
    );
});
