import assert from 'node:assert/strict';
import { cp, mkdir, mkdtemp, rename, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { HISTORY_FILE, HOLDERS_DIR, modelPath, versionPath } from '../../contract/store-layout.ts';
import { createBackup } from '../../service/backup/create.ts';
import { BackupError } from '../../service/backup/errors.ts';
import { restoreBackup } from '../../service/backup/restore.ts';
import { reference, startService, uploadSample, type TestService } from '../helpers/service.ts';

// The store tells the truth: what serves is what the store holds now, whatever happened to it
// while the service ran (a version replaced with other bytes, a version deleted under pinned
// requests, a crash between storing a first version and promoting it), and `backup restore`
// refuses to swap the store under a running service.

const row = async (name: string) => (await reference(name)).samples[0]!;

async function predict(svc: TestService, ref: string, features: Record<string, number>) {
  return svc.app.inject({ method: 'POST', url: `/api/v1/predict/${ref}`, payload: { features } });
}

/** iris@1 as another service stored it, from models/<sample>: the folder a restore would swap in. */
async function storedElsewhere(sample: string): Promise<string> {
  const other = await startService();
  const up = await uploadSample(other.app, sample, '1', {}, 'iris');
  assert.equal(up.statusCode, 201, up.body);
  await other.app.close();
  return other.modelsDir;
}

describe('the store tells the truth', () => {
  test('a version replaced with other bytes on disk: a pinned request serves the new bytes, not the loaded session', async () => {
    const svc = await startService();
    try {
      assert.equal((await uploadSample(svc.app, 'iris-logreg', '1', {}, 'iris')).statusCode, 201);
      const sample = await row('iris-logreg');
      const before = await predict(svc, 'iris@1', sample.features);
      assert.equal(before.statusCode, 200, before.body);
      for (const [i, p] of (before.json().probabilities as number[]).entries())
        assert.ok(Math.abs(p - sample.onnxruntime.probabilities![i]!) < 1e-5, `p[${i}] ${p}`);
      // What a restore of another store does to this version: the folder swapped by renames.
      const elsewhere = await storedElsewhere('iris-mlp');
      const target = join(svc.modelsDir, versionPath('iris', '1'));
      await rename(target, `${target}.old`);
      await cp(join(elsewhere, versionPath('iris', '1')), target, { recursive: true });
      await rm(`${target}.old`, { recursive: true });
      const mlp = await reference('iris-mlp');
      const after = await predict(svc, 'iris@1', sample.features);
      assert.equal(after.statusCode, 200, after.body);
      // The answer is iris-mlp's for the same row (its reference), not the cached logreg answer.
      const mlpSample = mlp.samples[0]!;
      assert.deepEqual(mlpSample.features, sample.features, 'both references use the same first row');
      for (const [i, p] of (after.json().probabilities as number[]).entries())
        assert.ok(Math.abs(p - mlpSample.onnxruntime.probabilities![i]!) < 1e-5, `p[${i}] ${p}`);
      assert.notEqual(after.headers['x-cache'], 'hit', 'an answer of the old bytes is never served from the cache');
      await rm(elsewhere, { recursive: true, force: true });
    } finally {
      await svc.close();
    }
  });

  test('under the operator, a routing naming other bytes than the loaded session reloads them', async () => {
    const svc = await startService();
    try {
      assert.equal((await uploadSample(svc.app, 'iris-logreg', '1', {}, 'iris')).statusCode, 201);
      const sample = await row('iris-logreg');
      const registry = svc.app.ctx.registry;
      const elsewhere = await storedElsewhere('iris-mlp');
      const target = join(svc.modelsDir, versionPath('iris', '1'));
      await rm(target, { recursive: true });
      await cp(join(elsewhere, versionPath('iris', '1')), target, { recursive: true });
      const sha256 = (await svc.app.ctx.store.readMetadata('iris', '1'))!.sha256;
      await registry.applyRouting(new Map([['iris', { version: '1', sha256 }]]));
      const res = await predict(svc, 'iris', sample.features);
      assert.equal(res.statusCode, 200, res.body);
      const mlp = (await reference('iris-mlp')).samples[0]!;
      for (const [i, p] of (res.json().probabilities as number[]).entries()) assert.ok(Math.abs(p - mlp.onnxruntime.probabilities![i]!) < 1e-5, `p[${i}] ${p}`);
      // A routing whose sha256 the store does not hold is refused, and the loaded version keeps serving.
      await registry.applyRouting(new Map([['iris', { version: '1', sha256: 'f'.repeat(64) }]]));
      assert.match(registry.status()[0]?.error ?? '', /in the store has sha256 [0-9a-f]{64}, the routing names f{64}/);
      assert.equal((await predict(svc, 'iris', sample.features)).statusCode, 200);
      await rm(elsewhere, { recursive: true, force: true });
    } finally {
      await svc.close();
    }
  });

  test('a version deleted under a stream of pinned requests stays deleted: no request loads it again', async () => {
    const svc = await startService();
    try {
      assert.equal((await uploadSample(svc.app, 'iris-logreg', '1', {}, 'iris')).statusCode, 201);
      assert.equal((await uploadSample(svc.app, 'iris-mlp', '2', { promote: true }, 'iris')).statusCode, 201);
      const sample = await row('iris-logreg');
      let stop = false;
      const codes: number[] = [];
      const clients = Array.from({ length: 8 }, async () => {
        while (!stop) codes.push((await predict(svc, 'iris@1', sample.features)).statusCode);
      });
      await new Promise((r) => setTimeout(r, 50));
      const del = await svc.app.inject({ method: 'DELETE', url: '/api/v1/models/iris/versions/1' });
      assert.equal(del.statusCode, 204, del.body);
      await new Promise((r) => setTimeout(r, 100));
      stop = true;
      await Promise.all(clients);
      assert.ok(codes.includes(200) && codes.at(-1) === 404, `codes ${[...new Set(codes)].join(',')}`);
      assert.deepEqual([...new Set(codes)].sort(), [200, 404], 'each request answered either from the version or 404');
      const described = (await svc.app.inject({ method: 'GET', url: '/api/v1/models/iris' })).json();
      assert.deepEqual(
        described.versions.map((v: { version: string }) => v.version),
        ['2'],
      );
      await new Promise((r) => setTimeout(r, 100));
      const metrics = (await svc.app.inject({ method: 'GET', url: '/metrics' })).body;
      assert.match(metrics, /^models_loaded 1$/m, 'only version 2 is loaded');
    } finally {
      await svc.close();
    }
  });

  test('a crash between storing a first version and recording its promote: it serves after a restart, and a retry gets it back', async () => {
    const modelsDir = await mkdtemp(join(tmpdir(), 'analytics-crash-'));
    try {
      // What the SIGKILL leaves: the version in place, the history with its upload and no promote.
      const elsewhere = await storedElsewhere('iris-logreg');
      await mkdir(join(modelsDir, modelPath('iris')), { recursive: true });
      await cp(join(elsewhere, versionPath('iris', '1')), join(modelsDir, versionPath('iris', '1')), { recursive: true });
      await writeFile(
        join(modelsDir, modelPath('iris'), HISTORY_FILE),
        `${JSON.stringify({ time: new Date().toISOString(), event: 'uploaded', version: '1' })}\n`,
      );
      await rm(elsewhere, { recursive: true, force: true });
      const svc = await startService({ MODELS_DIR: modelsDir });
      try {
        const desc = (await svc.app.inject({ method: 'GET', url: '/api/v1/models/iris' })).json();
        assert.equal(desc.production_version, '1');
        assert.equal((await predict(svc, 'iris', (await row('iris-logreg')).features)).statusCode, 200);
        // The client never saw its 201: it retries with the same bytes.
        const retry = await uploadSample(svc.app, 'iris-logreg', '1', {}, 'iris');
        assert.equal(retry.statusCode, 200, retry.body);
        assert.equal(retry.json().sha256, desc.versions[0].sha256);
        // Other bytes under the same version are still refused, saying why.
        const other = await uploadSample(svc.app, 'iris-mlp', '1', {}, 'iris');
        assert.equal(other.statusCode, 409, other.body);
        assert.match(other.json().detail, /already has version 1 with other bytes \(sha256 [0-9a-f]{64}\)/);
      } finally {
        await svc.app.close();
      }
    } finally {
      await rm(modelsDir, { recursive: true, force: true });
    }
  });

  test('backup restore refuses while a service holds the store, names it, and restores once it stopped', async () => {
    const svc = await startService();
    const dest = await mkdtemp(join(tmpdir(), 'analytics-backups-'));
    try {
      assert.equal((await uploadSample(svc.app, 'iris-logreg', '1', {}, 'iris')).statusCode, 201);
      const archive = await createBackup({ dest, modelsDir: svc.modelsDir });
      await assert.rejects(
        restoreBackup({ archive: archive.path, modelsDir: svc.modelsDir }),
        (err: unknown) =>
          err instanceof BackupError && err.code === 'STORE_IN_USE' && /in use by a running service \(.+-\d+, seen \d+ s ago\)/.test(err.message),
      );
      await svc.app.close();
      const restored = await restoreBackup({ archive: archive.path, modelsDir: svc.modelsDir });
      assert.equal(restored.restored[0]?.name, 'models');
      // A holder that stopped touching the store (a SIGKILLed service) is forgotten after 30 s.
      const stale = join(svc.modelsDir, HOLDERS_DIR, 'gone-host-1.json');
      await writeFile(stale, '{}\n');
      await assert.rejects(restoreBackup({ archive: archive.path, modelsDir: svc.modelsDir }), /gone-host-1/);
      const old = new Date(Date.now() - 60_000);
      await utimes(stale, old, old);
      await restoreBackup({ archive: archive.path, modelsDir: svc.modelsDir });
    } finally {
      await rm(dest, { recursive: true, force: true });
      await rm(svc.modelsDir, { recursive: true, force: true });
    }
  });
});
