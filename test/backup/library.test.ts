import assert from 'node:assert/strict';
import { appendFile, mkdir, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { test } from 'node:test';
import { createBackup } from '../../service/backup/create.ts';
import { verifyBackup } from '../../service/backup/verify.ts';
import { BackupError } from '../../service/backup/errors.ts';
import { restoreBackup } from '../../service/backup/restore.ts';
import { sandbox, snapshot } from './helpers.ts';

// Paths the CLI tests do not reach, through the library: swapping folder contents (what restore
// does when a folder is a mount point, e.g. a Redis volume), a restore that fails half-way through
// its parts, a backup taken while the store's append-only history grows, and one whose folder
// keeps changing under it.

async function fixture(t: Parameters<typeof sandbox>[0]) {
  const root = await sandbox(t);
  const store = join(root, 'store');
  const redis = join(root, 'redis');
  const dest = join(root, 'backups');
  await mkdir(join(store, 'production', 'm', '1'), { recursive: true });
  await writeFile(join(store, 'production', 'm', '1', 'model.onnx'), randomBytes(4096));
  await writeFile(join(store, 'production', 'm', 'history.jsonl'), '{"event":"uploaded"}\n');
  await mkdir(join(redis, 'appendonlydir'), { recursive: true });
  await writeFile(join(redis, 'dump.rdb'), randomBytes(4096));
  await mkdir(dest);
  return { root, store, redis, dest };
}

test('restore by swapping folder contents (mount points) restores the same trees', { timeout: 60_000 }, async (t) => {
  const { store, redis, dest } = await fixture(t);
  const archive = await createBackup({ dest, modelsDir: store, redisDir: redis });
  const storeBefore = await snapshot(join(store, 'production'), { mtimes: false });
  const redisBefore = await snapshot(redis, { mtimes: false });
  await rm(join(store, 'production', 'm'), { recursive: true });
  await writeFile(join(store, 'production', 'stray'), 'x');
  await writeFile(join(redis, 'dump.rdb'), 'changed');
  const r = await restoreBackup({ archive: archive.path, modelsDir: store, redisDir: redis, swap: 'contents' });
  assert.deepEqual(
    r.restored.map((p) => [p.name, p.swap]),
    [
      ['models', 'contents'],
      ['redis', 'contents'],
    ],
  );
  assert.deepEqual(await snapshot(join(store, 'production'), { mtimes: false }), storeBefore);
  assert.deepEqual(await snapshot(redis, { mtimes: false }), redisBefore);
});

test('a restore that fails in its second part changes nothing and leaves no temporary folders', { timeout: 60_000 }, async (t) => {
  const { root, store, redis, dest } = await fixture(t);
  const archive = await createBackup({ dest, modelsDir: store, redisDir: redis });
  await writeFile(join(store, 'production', 'm', '1', 'model.onnx'), 'newer model');
  const notAFolder = join(root, 'redis-file');
  await writeFile(notAFolder, 'x');
  const before = await snapshot(root, { mtimes: false });
  await assert.rejects(
    restoreBackup({ archive: archive.path, modelsDir: store, redisDir: notAFolder }),
    (err: unknown) => err instanceof BackupError && err.code === 'RESTORE' && /exists and is not a folder/.test(err.message),
  );
  assert.deepEqual(await snapshot(root, { mtimes: false }), before);
  assert.deepEqual(
    (await readdir(store)).filter((n) => n.startsWith('.analytics-')),
    [],
  );
});

test('a backup taken while a history file grows is consistent', { timeout: 60_000 }, async (t) => {
  const { store, dest } = await fixture(t);
  for (let i = 0; i < 8; i++) await writeFile(join(store, 'production', 'm', '1', `shard-${i}`), randomBytes(1024 * 1024));
  const history = join(store, 'production', 'm', 'history.jsonl');
  let appending = true;
  const appender = (async () => {
    let n = 0;
    while (appending) await appendFile(history, `${JSON.stringify({ event: 'promoted', n: n++ })}\n`);
  })();
  try {
    const archive = await createBackup({ dest, modelsDir: store });
    const verified = await verifyBackup(archive.path);
    assert.equal(verified.files, 10);
  } finally {
    appending = false;
    await appender;
  }
});

test('a folder that keeps changing (files replaced by rename) fails after the retries and leaves nothing', { timeout: 60_000 }, async (t) => {
  const { redis, store, dest } = await fixture(t);
  // Like Redis saving dump.rdb: write a temporary file, rename it over the old one, again and again.
  let churning = true;
  const churn = (async () => {
    for (let n = 0; churning; n++) {
      await writeFile(join(redis, 'temp.rdb.tmp'), `snapshot ${n}`);
      await rename(join(redis, 'temp.rdb.tmp'), join(redis, 'dump.rdb'));
    }
  })();
  try {
    await assert.rejects(
      createBackup({ dest, modelsDir: store, redisDir: redis }),
      (err: unknown) =>
        err instanceof BackupError && err.code === 'SOURCE_CHANGED' && /3 times in a row; run the backup when the store is quieter/.test(err.message),
    );
  } finally {
    churning = false;
    await churn;
  }
  assert.deepEqual(await readdir(dest), []);
  // Once it is quiet, the backup works.
  const archive = await createBackup({ dest, modelsDir: store, redisDir: redis });
  assert.equal((await verifyBackup(archive.path)).files, 3);
});
