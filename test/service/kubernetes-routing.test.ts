import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { waitFor } from '../helpers/processes.ts';
import { startService, uploadSample } from '../helpers/service.ts';

// CONTROL_PLANE=kubernetes: what serves follows the operator's routing file (the mounted
// ConfigMap), not uploads or history. The ModelVersion calls are covered against a real API
// server in test/operator/; here they are not reached.

const IRIS = { 'sepal length (cm)': 5.9, 'sepal width (cm)': 3.0, 'petal length (cm)': 5.1, 'petal width (cm)': 1.8 };
const unreachable = {
  create: async () => assert.fail('no ModelVersion calls in this test'),
  setStage: async () => assert.fail('no ModelVersion calls in this test'),
};

test('the service serves what the routing file names and follows its changes', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'routing-'));
  const routingFile = join(dir, 'routing.json');
  const seed = await startService();
  await uploadSample(seed.app, 'iris-logreg', '1', {}, 'iris');
  await uploadSample(seed.app, 'iris-mlp', '2', {}, 'iris');
  await seed.app.close();

  const route = (version: string) =>
    writeFile(routingFile, JSON.stringify({ models: { iris: { version, path: `production/iris/${version}/model.onnx`, features: [] } } }));
  await route('1');
  const svc = await startService({ MODELS_DIR: seed.modelsDir, CONTROL_PLANE: 'kubernetes', ROUTING_FILE: routingFile }, { modelVersions: unreachable });
  try {
    const predict = async () => (await svc.app.inject({ method: 'POST', url: '/api/v1/predict/iris', payload: { features: IRIS } })).json();
    assert.equal((await predict()).model_version, '1');
    assert.equal((await svc.app.inject({ url: '/ready' })).statusCode, 200);
    assert.equal((await svc.app.inject({ url: '/health' })).json().control_plane, 'kubernetes');

    await route('2');
    await waitFor('routing to v2', async () => (await predict()).model_version === '2', 10_000, 200);

    // A routed version the store lacks (its import has not landed): not ready.
    await route('9');
    await waitFor('not ready', async () => (await svc.app.inject({ url: '/ready' })).statusCode === 503, 10_000, 200);
    const del = await svc.app.inject({ method: 'DELETE', url: '/api/v1/models/iris/versions/1' });
    assert.equal(del.statusCode, 409);
    assert.match(del.json().detail, /kubectl delete mv/);
  } finally {
    await svc.close();
    await seed.close();
    await rm(dir, { recursive: true, force: true });
  }
});
