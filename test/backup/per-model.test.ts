import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { archiveName, MODEL_FORMAT_VERSION, parseArchiveName, verifyArchive, type Manifest } from '../../service/backup/archive.ts';
import { createBackup } from '../../service/backup/create.ts';
import { pruneBackups } from '../../service/backup/prune.ts';
import { restoreBackup } from '../../service/backup/restore.ts';
import { craftArchive, manifestFor, oneLineOf, runCli, sandbox, sha256, snapshot, type CraftedEntry } from './helpers.ts';
import { answers, start, upload } from './service-helpers.ts';

// Per-model backups (`--model NAME`), as the operator's `analytics-backup-<model>` CronJobs run
// them: an archive of one model's folder, named after it; list, prune and --latest that see only
// that model's archives (and, without --model, only whole-store ones); a restore that replaces
// that model's folder and nothing else.

const DAY = 24 * 3600_000;
const A = 'iris-logreg';
const B = 'iris-species';
const C = 'diabetes-linear';

test('per-model create → list → restore → prune: only that model changes and it answers as before', { timeout: 180_000 }, async (t) => {
  const root = await sandbox(t);
  const store = join(root, 'store');
  const redis = join(root, 'redis');
  const dest = join(root, 'backups');
  const production = join(store, 'production');
  await mkdir(dest);
  await mkdir(redis);
  await writeFile(join(redis, 'dump.rdb'), randomBytes(16 * 1024));
  const env = { MODELS_DIR: store, BACKUP_DIR: dest, REDIS_DATA_DIR: redis };

  let app = await start(store);
  let aBefore: Record<string, unknown>;
  try {
    for (const name of [A, B, C]) await upload(app, name, '1');
    // A history with a promotion and a rollback.
    await upload(app, A, '2', true);
    const back = await app.inject({ method: 'POST', url: `/api/v1/models/${A}/versions/1/promote` });
    assert.equal(back.statusCode, 200, back.body);
    aBefore = await answers(app, [A]);
  } finally {
    await app.close();
  }
  const aArchived = await snapshot(join(production, A), { mtimes: false });

  // A's archive holds A only: no other model, no Redis data.
  const created = await runCli(['backup', 'create', '--model', A, '--json'], env);
  assert.equal(created.code, 0, created.stderr);
  const result = JSON.parse(created.stdout) as {
    name: string;
    path: string;
    files: number;
    model: string;
    sources: Array<{ name: string; archivePath: string }>;
  };
  assert.match(result.name, new RegExp(`^analytics-backup-${A}-\\d{8}T\\d{6}(\\.\\d{3})?Z\\.tar\\.gz$`));
  assert.equal(parseArchiveName(result.name)?.model, A);
  assert.equal(result.model, A);
  assert.deepEqual(
    result.sources.map((s) => [s.name, s.archivePath]),
    [['models', `models/production/${A}`]],
  );
  const { manifest } = await verifyArchive(result.path);
  assert.equal(manifest.model, A);
  assert.equal(manifest.formatVersion, MODEL_FORMAT_VERSION);
  assert.equal(result.files, Object.values(aArchived).filter((v) => v.startsWith('file')).length);
  for (const p of [...manifest.files.map((f) => f.path), ...manifest.directories]) assert.ok(p.startsWith(`models/production/${A}/`), p);
  // The other archives in the same folder: one of B, one of the whole store.
  const bCreated = await runCli(['backup', 'create', '--model', B, '--json'], env);
  assert.equal(bCreated.code, 0, bCreated.stderr);
  const bName = (JSON.parse(bCreated.stdout) as { name: string }).name;
  const whole = await runCli(['backup', 'create', '--json'], env);
  assert.equal(whole.code, 0, whole.stderr);
  const wholeName = (JSON.parse(whole.stdout) as { name: string }).name;

  const list = async (...args: string[]) => {
    const r = await runCli(['backup', 'list', '--json', '--verify', ...args], env);
    assert.equal(r.code, 0, r.stderr);
    return (JSON.parse(r.stdout) as Array<{ name: string; verified: boolean }>).map((row) => [row.name, row.verified]);
  };
  assert.deepEqual(await list('--model', A), [[result.name, true]]);
  assert.deepEqual(await list('--model', B), [[bName, true]]);
  assert.deepEqual(await list('--model', C), []);
  assert.deepEqual(await list(), [[wholeName, true]]);
  const text = await runCli(['backup', 'list'], env);
  assert.match(text.stdout, new RegExp(`^\\(per-model archives not listed, of ${A}, ${B}: pass --model NAME\\)$`, 'm'));

  // After the backup: A gets a new production version; B gets a new version too, which A's
  // restore must keep (the archive's B would be older), and C is left alone.
  app = await start(store);
  let bAfter: Record<string, unknown>;
  try {
    await upload(app, A, '3', true);
    await upload(app, B, '2', true);
    assert.notDeepEqual(await answers(app, [A]), aBefore);
    bAfter = await answers(app, [B, C]);
  } finally {
    await app.close();
  }
  await writeFile(join(production, A, 'stray'), 'not from the backup');
  const others: Record<string, Record<string, string>> = { [B]: await snapshot(join(production, B)), [C]: await snapshot(join(production, C)) };
  const redisBefore = await snapshot(redis);

  const restored = await runCli(['backup', 'restore', '--latest', '--model', A], env);
  assert.equal(restored.code, 0, restored.stderr);
  assert.match(restored.stdout, new RegExp(`^restored .*${result.name} \\(model ${A} only, `));
  assert.match(restored.stdout, new RegExp(`models: \\d+ files, .* into ${production}/${A}\\n`));
  assert.deepEqual(await snapshot(join(production, A), { mtimes: false }), aArchived);
  // The other models: byte for byte, mode and mtime, as they were; the Redis folder too.
  for (const name of [B, C]) assert.deepEqual(await snapshot(join(production, name)), others[name], `${name} changed`);
  assert.deepEqual(await snapshot(redis), redisBefore);
  assert.deepEqual((await readdir(production)).sort(), [A, C, B].sort());
  assert.deepEqual(
    (await readdir(store)).filter((n) => n.startsWith('.analytics-')),
    [],
  );

  app = await start(store);
  try {
    assert.deepEqual(await answers(app, [A]), aBefore);
    assert.deepEqual(await answers(app, [B, C]), bAfter);
  } finally {
    await app.close();
  }

  // A model that was deleted altogether comes back from its archive; the others stay.
  await rm(join(production, A), { recursive: true });
  const again = await runCli(['backup', 'restore', result.name], env);
  assert.equal(again.code, 0, again.stderr);
  assert.deepEqual(await snapshot(join(production, A), { mtimes: false }), aArchived);
  for (const name of [B, C]) assert.deepEqual(await snapshot(join(production, name)), others[name], `${name} changed`);

  // prune --model A with no retention keeps A's newest only, and leaves B's and the whole store's.
  const second = await runCli(['backup', 'create', '--model', A, '--json'], env);
  assert.equal(second.code, 0, second.stderr);
  const secondName = (JSON.parse(second.stdout) as { name: string }).name;
  const pruned = await runCli(['backup', 'prune', '--model', A, '--retention-days', '0', '--json'], env);
  assert.equal(pruned.code, 0, pruned.stderr);
  assert.deepEqual(JSON.parse(pruned.stdout), {
    model: A,
    cutoff: (JSON.parse(pruned.stdout) as { cutoff: string }).cutoff,
    retentionDays: 0,
    dryRun: false,
    kept: [secondName],
    deleted: [result.name],
  });
  assert.deepEqual((await readdir(dest)).sort(), [secondName, bName, wholeName].sort());
});

test('per-model prune keeps each model its own retention and newest, and never touches other archives', { timeout: 60_000 }, async (t) => {
  const dest = await sandbox(t);
  const now = Date.now();
  const make = async (model: string | undefined, daysAgo: number[]) => {
    const names: string[] = [];
    for (const d of daysAgo) {
      const name = archiveName(new Date(now - d * DAY - 5 * 60_000), { model });
      await writeFile(join(dest, name), `archive of ${model ?? 'the whole store'} from ${d} days ago`);
      names.push(name);
    }
    return names; // newest first
  };
  // "m" and "m-1" (one name a prefix of the other) and "20260101" (digits, like a date) must not mix.
  const m = await make('m', [0, 1, 2, 3, 4, 5]);
  const m1 = await make('m-1', [0, 2, 4, 6, 8]);
  const digits = await make('20260101', [1, 9]);
  const stale = await make('stale', [30, 40]); // a model whose newest archive is old
  const wholeStore = await make(undefined, [0, 3, 6, 9]);
  const all = async () => (await readdir(dest)).sort();
  const before = await all();

  const dry = await runCli(['backup', 'prune', '--model', 'm', '--retention-days', '3', '--dry-run', '--json'], { BACKUP_DIR: dest });
  assert.equal(dry.code, 0, dry.stderr);
  assert.deepEqual((JSON.parse(dry.stdout) as { deleted: string[] }).deleted, m.slice(3));
  assert.deepEqual(await all(), before);

  const r = await runCli(['backup', 'prune', '--model', 'm', '--retention-days', '3'], { BACKUP_DIR: dest });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^kept 3 archives of the model m \(retention 3 days, /m);
  assert.deepEqual(
    await all(),
    before.filter((n) => !m.slice(3).includes(n)),
  );

  // The newest of a model is kept however old, even with newer archives of other models around.
  const s = await pruneBackups({ dest, retentionDays: 7, model: 'stale' });
  assert.deepEqual(
    s.kept.map((a) => a.name),
    [stale[0]],
  );
  assert.deepEqual(
    s.deleted.map((a) => a.name),
    [stale[1]],
  );
  // The whole store's prune sees whole-store archives only.
  const w = await runCli(['backup', 'prune', '--retention-days', '4', '--json'], { BACKUP_DIR: dest });
  assert.equal(w.code, 0, w.stderr);
  assert.deepEqual(JSON.parse(w.stdout).kept, wholeStore.slice(0, 2));
  assert.deepEqual(JSON.parse(w.stdout).deleted, wholeStore.slice(2));
  // Untouched all along: m-1's and 20260101's archives.
  const left = await all();
  for (const n of [...m1, ...digits, stale[0]!, ...m.slice(0, 3), ...wholeStore.slice(0, 2)]) assert.ok(left.includes(n), `${n} was deleted`);
  assert.equal(left.length, m1.length + digits.length + 1 + 3 + 2);

  // list: each scope, newest first; the whole-store listing is as if there were no per-model archives.
  const names = async (...args: string[]) => {
    const l = await runCli(['backup', 'list', '--json', ...args], { BACKUP_DIR: dest });
    assert.equal(l.code, 0, l.stderr);
    return (JSON.parse(l.stdout) as Array<{ name: string; model?: string }>).map((row) => [row.name, row.model]);
  };
  assert.deepEqual(
    await names(),
    wholeStore.slice(0, 2).map((n) => [n, undefined]),
  );
  assert.deepEqual(
    await names('--model', 'm-1'),
    m1.map((n) => [n, 'm-1']),
  );
  assert.deepEqual(
    await names('--model', '20260101'),
    digits.map((n) => [n, '20260101']),
  );
});

test('archive names: a model name and the timestamp never mix', () => {
  const when = new Date(Date.UTC(2026, 10, 26, 2, 0, 0, 123));
  const cases: Array<[string, string | undefined, number]> = [
    ['analytics-backup-20261126T020000Z.tar.gz', undefined, 0],
    ['analytics-backup-20261126T020000.123Z-2.tar.gz', undefined, 2],
    ['analytics-backup-m-20261126T020000Z.tar.gz', 'm', 0],
    ['analytics-backup-m-1-20261126T020000.123Z-3.tar.gz', 'm-1', 3],
    ['analytics-backup-20261126-20261126T020000Z.tar.gz', '20261126', 0],
    ['analytics-backup-2-20261126T020000Z.tar.gz', '2', 0],
    [`analytics-backup-${'a'.repeat(63)}-20261126T020000Z.tar.gz`, 'a'.repeat(63), 0],
  ];
  for (const [name, model, counter] of cases) {
    const parsed = parseArchiveName(name);
    assert.ok(parsed, name);
    assert.equal(parsed.model, model, name);
    assert.equal(parsed.counter, counter, name);
    assert.equal(archiveName(parsed.created, { model, milliseconds: name.includes('.123Z'), counter }), name);
  }
  for (const name of [
    'analytics-backup-M-20261126T020000Z.tar.gz', // upper case
    'analytics-backup--20261126T020000Z.tar.gz',
    'analytics-backup-m--20261126T020000Z.tar.gz', // "m-" is no model name
    'analytics-backup--m-20261126T020000Z.tar.gz',
    `analytics-backup-${'a'.repeat(64)}-20261126T020000Z.tar.gz`,
    'analytics-backup-m_1-20261126T020000Z.tar.gz',
    'analytics-backup-20261126T020000Z-m.tar.gz', // the timestamp is the last part
    'analytics-backup-m-20261126T020000Z.tar.gz.partial',
    'analytics-backup-m-20261326T020000Z.tar.gz',
  ])
    assert.equal(parseArchiveName(name), undefined, name);
  for (const model of ['a', 'iris-logreg', '0', 'x9-y'])
    assert.deepEqual(parseArchiveName(archiveName(when, { model, milliseconds: true, counter: 7 })), { created: when, counter: 7, model });
  assert.throws(() => archiveName(when, { model: 'Not-A-Name' }), /not a model name/);
});

test('create --model: unknown or invalid models and misused options fail clearly; --include-redis', { timeout: 60_000 }, async (t) => {
  const root = await sandbox(t);
  const store = join(root, 'store');
  const redis = join(root, 'redis');
  const dest = join(root, 'backups');
  await mkdir(join(store, 'production', 'm', '1'), { recursive: true });
  await mkdir(join(store, 'production', 'other', '1'), { recursive: true });
  await writeFile(join(store, 'production', 'm', '1', 'model.onnx'), 'm');
  await writeFile(join(store, 'production', 'other', '1', 'model.onnx'), 'other');
  await mkdir(redis);
  await writeFile(join(redis, 'dump.rdb'), 'redis');
  await mkdir(dest);
  const env = { MODELS_DIR: store, BACKUP_DIR: dest };

  const unknown = await runCli(['backup', 'create', '--model', 'nope'], env);
  assert.equal(unknown.code, 1);
  assert.equal(
    oneLineOf(unknown.stderr),
    `analytics-api backup create: there is no model "nope" in the model store (no folder ${join(store, 'production', 'nope')}); its models: m, other`,
  );
  const usage: Array<[string[], Record<string, string>, RegExp]> = [
    [['backup', 'create', '--model', 'Bad_Name'], env, /--model "Bad_Name": a model name is 1-63 lowercase letters/],
    [['backup', 'list', '--model', '../m'], env, /--model "\.\.\/m": a model name/],
    [['backup', 'create', '--include-redis'], { ...env, REDIS_DATA_DIR: redis }, /--include-redis goes with --model/],
    [['backup', 'create', '--model', 'm', '--include-redis'], env, /--include-redis needs the Redis data folder/],
    [['backup', 'list', '--include-redis'], env, /--include-redis is not an option of "backup list"/],
    [
      ['backup', 'create', '--model', 'm', '--dest', join(store, 'production', 'other')],
      env,
      /is inside .*production, the model store; choose a folder outside it/,
    ],
  ];
  for (const [args, e, reason] of usage) {
    const r = await runCli(args, e);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(oneLineOf(r.stderr), reason, args.join(' '));
  }
  assert.deepEqual(await readdir(dest), []);
  assert.deepEqual(await readdir(join(store, 'production', 'other')), ['1']);

  // Redis data: left out of a per-model archive unless asked for.
  const plain = await runCli(['backup', 'create', '--model', 'm', '--json'], { ...env, REDIS_DATA_DIR: redis });
  assert.equal(plain.code, 0, plain.stderr);
  assert.deepEqual(
    (JSON.parse(plain.stdout) as { sources: Array<{ name: string }> }).sources.map((s) => s.name),
    ['models'],
  );
  const withRedis = await runCli(['backup', 'create', '--model', 'm', '--include-redis', '--json'], { ...env, REDIS_DATA_DIR: redis });
  assert.equal(withRedis.code, 0, withRedis.stderr);
  const r = JSON.parse(withRedis.stdout) as { path: string; files: number; sources: Array<{ name: string; archivePath: string }> };
  assert.deepEqual(
    r.sources.map((s) => [s.name, s.archivePath]),
    [
      ['models', 'models/production/m'],
      ['redis', 'redis'],
    ],
  );
  assert.deepEqual(
    (await verifyArchive(r.path)).manifest.files.map((f) => f.path),
    ['models/production/m/1/model.onnx', 'redis/dump.rdb'],
  );

  // --latest without --model sees no per-model archive, and says where they are.
  const latest = await runCli(['backup', 'verify', '--latest'], env);
  assert.equal(latest.code, 1);
  assert.match(oneLineOf(latest.stderr), /there are no archives in .* \(only per-model archives, 2; pass --model NAME for those\)/);
  const none = await runCli(['backup', 'restore', '--latest', '--model', 'other'], env);
  assert.equal(none.code, 1);
  assert.match(oneLineOf(none.stderr), /there are no archives of the model other in /);
  // A named archive with a --model it does not hold is refused before anything is written.
  const before = await snapshot(store);
  const wrong = await runCli(['backup', 'restore', '--model', 'other', r.path], env);
  assert.equal(wrong.code, 2);
  assert.match(oneLineOf(wrong.stderr), /holds the model m, not other/);
  assert.deepEqual(await snapshot(store), before);
});

test('a model archive with entries outside its model folder is refused and nothing is written', { timeout: 120_000 }, async (t) => {
  const root = await sandbox(t);
  const store = join(root, 'store');
  const redis = join(root, 'redis');
  await mkdir(join(store, 'production', 'm', '1'), { recursive: true });
  await mkdir(join(store, 'production', 'other', '1'), { recursive: true });
  await writeFile(join(store, 'production', 'm', '1', 'model.onnx'), 'live m');
  await writeFile(join(store, 'production', 'other', '1', 'model.onnx'), 'live other');
  await mkdir(redis);
  await writeFile(join(redis, 'dump.rdb'), 'live redis');
  const env = { MODELS_DIR: store, REDIS_DATA_DIR: redis };

  const ok = { path: 'models/production/m/1/model.onnx', data: 'model bytes' };
  const modelManifest = (files: Array<{ path: string; data: string }>, extra: Partial<Manifest> = {}) =>
    manifestFor(files, [], {
      formatVersion: MODEL_FORMAT_VERSION,
      model: 'm',
      sources: [{ name: 'models', path: '/app/models/production/m', archivePath: 'models/production/m' }],
      ...extra,
    });
  const otherFile = { path: 'models/production/other/1/model.onnx', data: 'overwritten!' };
  const cases: Array<[string, CraftedEntry[], ReturnType<typeof manifestFor> | string, RegExp]> = [
    // Each hostile entry comes after a harmless one, so a restore that extracted as it read would already have written.
    [
      'another model',
      [ok, otherFile],
      modelManifest([ok]),
      /entry "models\/production\/other\/1\/model\.onnx" is outside models\/production\/m\/, in an archive of the model m/,
    ],
    [
      'another model, listed',
      [ok, otherFile],
      modelManifest([ok, otherFile]),
      /entry "models\/production\/other\/1\/model\.onnx" is outside models\/production\/m\//,
    ],
    [
      'a name that starts like it',
      [ok, { path: 'models/production/mx/1/a', data: 'x' }],
      modelManifest([ok]),
      /"models\/production\/mx\/1\/a" is outside models\/production\/m\//,
    ],
    ['another model folder', [ok, { path: 'models/production/other/', type: 'Directory' }], modelManifest([ok]), /"models\/production\/other" is outside/],
    ['the model folder as a file', [ok, { path: 'models/production/m', data: 'x' }], modelManifest([ok]), /"models\/production\/m" is outside/],
    [
      'Redis data it does not declare',
      [ok, { path: 'redis/dump.rdb', data: 'x' }],
      modelManifest([ok]),
      /"redis\/dump\.rdb" is outside models\/production\/m\//,
    ],
    ['a climb out', [ok, { path: 'models/production/m/../other/1/model.onnx', data: 'x' }], modelManifest([ok]), /climbs out with "\.\."/],
    ['a link to another model', [ok, { path: 'models/production/m/2', type: 'SymbolicLink', linkpath: '../other' }], modelManifest([ok]), /symbolic link/],
    [
      'a model without format version 2',
      [ok],
      modelManifest([ok], { formatVersion: 1 }),
      /not an analytics-api-backup manifest of format version 1 or 2: model: a manifest names a model exactly when its format version is 2/,
    ],
    [
      'a source outside the model',
      [ok],
      modelManifest([ok], { sources: [{ name: 'models', path: '/x', archivePath: 'models/production' }] }),
      /sources\.0\.archivePath: must be models\/production\/m/,
    ],
    ['a model name that climbs', [ok], modelManifest([ok], { model: '..' }), /model: not a model name/],
  ];
  for (const [what, entries, manifest, reason] of cases) {
    const file = join(root, `${what.replace(/\W+/g, '-')}.tar.gz`);
    await craftArchive(file, entries, manifest);
    const before = await snapshot(root);
    for (const cmd of ['verify', 'restore']) {
      const r = await runCli(['backup', cmd, file], env);
      assert.equal(r.code, 1, `${cmd} ${what}: ${r.stdout}${r.stderr}`);
      assert.match(oneLineOf(r.stderr), reason, `${cmd} ${what}`);
    }
    assert.deepEqual(await snapshot(root), before, `${what}: something was written`);
  }

  // The same archive without the hostile entry restores m, and only m.
  const good = join(root, 'good.tar.gz');
  await craftArchive(good, [ok], modelManifest([ok]));
  const otherBefore = await snapshot(join(store, 'production', 'other'));
  const redisBefore = await snapshot(redis);
  const r = await runCli(['backup', 'restore', good, '--json'], env);
  assert.equal(r.code, 0, r.stderr);
  assert.equal((JSON.parse(r.stdout) as { model: string }).model, 'm');
  const restored = await snapshot(join(store, 'production', 'm'), { mtimes: false });
  assert.deepEqual(Object.keys(restored).sort(), ['.', '1', '1/model.onnx']);
  assert.match(restored['1/model.onnx']!, new RegExp(`^file mode=644 size=11 sha256=${sha256(Buffer.from(ok.data))}$`));
  assert.deepEqual(await snapshot(join(store, 'production', 'other')), otherBefore);
  assert.deepEqual(await snapshot(redis), redisBefore);
});

test('library: a per-model restore by swapping folder contents, and a failed one, leave other models alone', { timeout: 60_000 }, async (t) => {
  const root = await sandbox(t);
  const store = join(root, 'store');
  const dest = join(root, 'backups');
  for (const name of ['m', 'other']) {
    await mkdir(join(store, 'production', name, '1'), { recursive: true });
    await writeFile(join(store, 'production', name, '1', 'model.onnx'), randomBytes(4096));
    await writeFile(join(store, 'production', name, 'history.jsonl'), '{"event":"uploaded"}\n');
  }
  await mkdir(dest);
  const archive = await createBackup({ dest, modelsDir: store, model: 'm' });
  assert.equal(archive.model, 'm');
  const mBefore = await snapshot(join(store, 'production', 'm'), { mtimes: false });
  await writeFile(join(store, 'production', 'm', '1', 'model.onnx'), 'changed');
  await writeFile(join(store, 'production', 'm', 'stray'), 'x');
  const otherBefore = await snapshot(join(store, 'production', 'other'));

  const r = await restoreBackup({ archive: archive.path, modelsDir: store, swap: 'contents' });
  assert.equal(r.model, 'm');
  assert.deepEqual(
    r.restored.map((p) => [p.name, p.target, p.swap]),
    [['models', join(store, 'production', 'm'), 'contents']],
  );
  assert.deepEqual(await snapshot(join(store, 'production', 'm'), { mtimes: false }), mBefore);
  assert.deepEqual(await snapshot(join(store, 'production', 'other')), otherBefore);

  // A model folder that is a file: the restore fails and changes nothing.
  await rm(join(store, 'production', 'm'), { recursive: true });
  await writeFile(join(store, 'production', 'm'), 'not a folder');
  const before = await snapshot(root);
  await assert.rejects(restoreBackup({ archive: archive.path, modelsDir: store }), /exists and is not a folder/);
  assert.deepEqual(await snapshot(root), before);
  // An archive restored as another model's is refused.
  await assert.rejects(restoreBackup({ archive: archive.path, modelsDir: store, model: 'other' }), /holds the model m, not other/);
  assert.deepEqual(await snapshot(root), before);
});
