import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { MODELS, runCli, sandbox, snapshot } from './helpers.ts';
import { answers, sampleModels, start, upload } from './service-helpers.ts';

// The whole story: a service with every sample model (one with a rollback in its history) and a
// Redis data folder → `backup create` → the store and Redis folder wiped → `backup restore` → a new
// service on the restored store answers every reference sample exactly as before.

test('backup create → wipe → restore gives a store that answers exactly as before', { timeout: 180_000 }, async (t) => {
  const root = await sandbox(t);
  const store = join(root, 'store');
  const redis = join(root, 'redis');
  const dest = join(root, 'backups');
  await mkdir(dest);
  await mkdir(join(redis, 'appendonlydir'), { recursive: true });
  await writeFile(join(redis, 'dump.rdb'), randomBytes(256 * 1024));
  await writeFile(join(redis, 'appendonlydir', 'appendonly.aof.1.incr.aof'), '*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n');
  const env = { MODELS_DIR: store, BACKUP_DIR: dest, REDIS_DATA_DIR: redis };

  const names = await sampleModels();
  assert.ok(names.length >= 5, `sample models in ${MODELS}`);
  let app = await start(store);
  let before: Record<string, unknown>;
  try {
    for (const name of names) await upload(app, name, '1');
    // A history with more than uploads: v2 promoted, then rolled back to v1.
    await upload(app, 'iris-logreg', '2', true);
    const back = await app.inject({ method: 'POST', url: '/api/v1/models/iris-logreg/versions/1/promote' });
    assert.equal(back.statusCode, 200, back.body);
    before = await answers(app, names);
  } finally {
    await app.close();
  }
  const storeBefore = await snapshot(join(store, 'production'), { mtimes: false });
  const redisBefore = await snapshot(redis, { mtimes: false });

  const created = await runCli(['backup', 'create', '--json'], env);
  assert.equal(created.code, 0, created.stderr);
  const result = JSON.parse(created.stdout) as { name: string; path: string; files: number; bytes: number; sizeBytes: number; durationMs: number };
  assert.match(result.name, /^analytics-backup-\d{8}T\d{6}(\.\d{3})?Z\.tar\.gz$/);
  assert.equal(result.files, Object.values(storeBefore).filter((v) => v.startsWith('file')).length + 2);
  t.diagnostic(
    `sample store: ${names.length} models, ${result.files} files, ${result.bytes} bytes → archive ${result.sizeBytes} bytes in ${Math.round(result.durationMs)} ms`,
  );

  const listed = await runCli(['backup', 'list', '--json', '--verify'], env);
  assert.equal(listed.code, 0, listed.stderr);
  const rows = JSON.parse(listed.stdout) as Array<{ name: string; verified: boolean }>;
  assert.deepEqual(
    rows.map((r) => [r.name, r.verified]),
    [[result.name, true]],
  );

  const verified = await runCli(['backup', 'verify', '--latest'], env);
  assert.equal(verified.code, 0, verified.stderr);
  assert.match(verified.stdout, /^ok .* every checksum matches\n$/);

  // Disaster: the store and the Redis data are gone or changed.
  await rm(join(store, 'production'), { recursive: true });
  await rm(join(redis, 'dump.rdb'));
  await writeFile(join(redis, 'stray.rdb'), 'not from the backup');

  const restored = await runCli(['backup', 'restore', result.name], env);
  assert.equal(restored.code, 0, restored.stderr);
  assert.match(restored.stdout, /models: \d+ files/);
  assert.match(restored.stdout, /redis: 2 files/);
  assert.deepEqual(await snapshot(join(store, 'production'), { mtimes: false }), storeBefore);
  assert.deepEqual(await snapshot(redis, { mtimes: false }), redisBefore);
  // Nothing of the restore is left beside the targets.
  assert.deepEqual(
    (await readdir(store)).filter((n) => n.startsWith('.analytics-')),
    [],
  );
  assert.deepEqual((await readdir(root)).sort(), ['backups', 'redis', 'store']);

  app = await start(store);
  try {
    assert.deepEqual(await answers(app, names), before);
  } finally {
    await app.close();
  }
});

test('restore onto a fresh machine (no store yet) and with the Redis folder left out', { timeout: 120_000 }, async (t) => {
  const root = await sandbox(t);
  const store = join(root, 'store');
  const dest = join(root, 'backups');
  const redis = join(root, 'redis');
  await mkdir(dest);
  await mkdir(redis);
  await writeFile(join(redis, 'dump.rdb'), 'redis data');
  let app = await start(store);
  try {
    await upload(app, 'iris-species', '1');
  } finally {
    await app.close();
  }
  const created = await runCli(['backup', 'create'], { MODELS_DIR: store, BACKUP_DIR: dest, REDIS_DATA_DIR: redis });
  assert.equal(created.code, 0, created.stderr);
  assert.match(created.stdout, /^created .*analytics-backup-.*\.tar\.gz: 4 files, .* verified/);

  const fresh = join(root, 'elsewhere', 'models');
  const restored = await runCli(['backup', 'restore', '--latest', '--models-dir', fresh], { BACKUP_DIR: dest });
  assert.equal(restored.code, 0, restored.stderr);
  assert.match(restored.stdout, /note: the archive holds Redis data, left out/);
  assert.deepEqual(await snapshot(join(fresh, 'production'), { mtimes: false }), await snapshot(join(store, 'production'), { mtimes: false }));
  app = await start(fresh);
  try {
    const res = await app.inject({ method: 'GET', url: '/api/v1/models/iris-species' });
    assert.equal(res.statusCode, 200);
    assert.equal((res.json() as { production_version: string }).production_version, '1');
  } finally {
    await app.close();
  }
  // An archive without Redis data leaves a configured Redis folder alone.
  const noRedis = await runCli(['backup', 'create', '--redis-dir', ''], { MODELS_DIR: store, BACKUP_DIR: dest });
  assert.equal(noRedis.code, 0, noRedis.stderr);
  const redisBefore = await snapshot(redis);
  const again = await runCli(['backup', 'restore', '--latest', '--json'], { MODELS_DIR: store, BACKUP_DIR: dest, REDIS_DATA_DIR: redis });
  assert.equal(again.code, 0, again.stderr);
  assert.deepEqual(
    (JSON.parse(again.stdout) as { restored: Array<{ name: string }> }).restored.map((p) => p.name),
    ['models'],
  );
  assert.deepEqual(await snapshot(redis), redisBefore);
});
