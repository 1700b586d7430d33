import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { modelVersionName, ROUTING_CONFIGMAP, ROUTING_KEY } from '../../contract/names.ts';
import { serviceRules } from '../../contract/rbac.ts';
import { routingText } from '../../contract/routing.ts';
import type { ControlPlane } from '../k8s/control-plane.ts';
import type * as grpc from '@grpc/grpc-js';
import { call, grpcClient } from '../helpers/grpc.ts';
import { waitFor } from '../helpers/processes.ts';
import { startService, uploadSample, type TestService } from '../helpers/service.ts';
import { getMv, grantRole, kubectlApply, ns, startCluster } from './helpers.ts';

// The service with CONTROL_PLANE=kubernetes against a real API server, as its own ServiceAccount
// with the Role from contract/rbac.ts: an upload stores the artifact and creates the ModelVersion;
// promote asks for the Production stage; what serves follows the routing ConfigMap, watched
// through the API and swapped in place, also across an API server restart.

const IRIS = { 'sepal length (cm)': 5.9, 'sepal width (cm)': 3.0, 'petal length (cm)': 5.1, 'petal width (cm)': 1.8 };

let cp: ControlPlane;
let svc: TestService;
before(async () => {
  cp = await startCluster({ controllers: false });
  const user = await grantRole(cp, 'analytics-api', serviceRules);
  svc = await startService({ CONTROL_PLANE: 'kubernetes', POD_NAMESPACE: ns, GRPC_PORT: '0' }, { kubeConfig: cp.impersonatedKubeConfig(user) });
});
after(async () => {
  await svc?.close();
  await cp?.stop();
});

const route = (versions: Record<string, string>) =>
  kubectlApply(cp, {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: ROUTING_CONFIGMAP, namespace: ns },
    data: {
      [ROUTING_KEY]: routingText({
        models: Object.fromEntries(
          Object.entries(versions).map(([model, version]) => [model, { version, path: `production/${model}/${version}/model.onnx`, features: [] }]),
        ),
      }),
    },
  });
const predict = async () => svc.app.inject({ method: 'POST', url: '/api/v1/predict/iris', payload: { features: IRIS } });

describe('uploads and promotes become ModelVersions', () => {
  test('an upload stores the artifact and creates its ModelVersion (the first one Production)', async () => {
    const res = await uploadSample(svc.app, 'iris-logreg', '1.0', {}, 'iris');
    assert.equal(res.statusCode, 201, res.body);
    const mv = await getMv(cp.kubeConfig(), modelVersionName('iris', '1.0'));
    assert.ok(mv, 'the ModelVersion exists');
    assert.equal(mv.spec.model, 'iris');
    assert.equal(mv.spec.version, '1.0');
    assert.equal(mv.spec.stage, 'Production');
    assert.equal(mv.spec.sha256, res.json().sha256);
    assert.deepEqual(mv.spec.source, { storePath: 'production/iris/1.0/model.onnx' });
    assert.deepEqual(mv.spec.features, res.json().features);
    // Serving follows the operator's routing, not the upload: nothing routed yet, not ready.
    assert.equal((await predict()).statusCode, 404);
    assert.equal((await svc.app.inject({ url: '/ready' })).statusCode, 503, 'not ready before a routing was read');
  });

  test('a later version is Staging until promoted; promote patches its stage (202)', async () => {
    assert.equal((await uploadSample(svc.app, 'iris-mlp', '2.0', {}, 'iris')).statusCode, 201);
    assert.equal((await getMv(cp.kubeConfig(), modelVersionName('iris', '2.0')))?.spec.stage, 'Staging');
    const promote = await svc.app.inject({ method: 'POST', url: '/api/v1/models/iris/versions/2.0/promote' });
    assert.equal(promote.statusCode, 202, promote.body);
    assert.equal(promote.json().requested, true);
    assert.equal((await getMv(cp.kubeConfig(), modelVersionName('iris', '2.0')))?.spec.stage, 'Production');
    assert.equal((await svc.app.inject({ method: 'POST', url: '/api/v1/models/iris/versions/9/promote' })).statusCode, 404);
  });

  test('an upload under a name another ModelVersion holds is a 409, and nothing is kept', async () => {
    await kubectlApply(cp, {
      apiVersion: 'serving.analytics.dev/v1alpha1',
      kind: 'ModelVersion',
      metadata: { name: modelVersionName('wine', '3'), namespace: ns },
      spec: { model: 'wine', version: '3', source: { url: 'http://models.test/wine.onnx' }, sha256: 'f'.repeat(64) },
    });
    const res = await uploadSample(svc.app, 'wine-forest', '3', {}, 'wine');
    assert.equal(res.statusCode, 409, res.body);
    assert.equal(res.json().code, 'VERSION_EXISTS');
    assert.equal((await svc.app.inject({ url: '/api/v1/models/wine' })).statusCode, 404, 'the artifact was removed');
  });
});

describe('what serves follows the routing ConfigMap, in place', () => {
  test('the routed version serves, and a change lands within seconds without a restart', async () => {
    await route({ iris: '1.0' });
    await waitFor('routing to 1.0', async () => (await predict()).json().model_version === '1.0', 10_000, 100);
    assert.equal((await svc.app.inject({ url: '/ready' })).statusCode, 200);
    assert.deepEqual(
      (await svc.app.inject({ url: '/health' })).json().models.map((m: { name: string; version: string; loaded: boolean }) => [m.name, m.version, m.loaded]),
      [['iris', '1.0', true]],
      'what the operator reads from each pod',
    );
    const t0 = performance.now();
    await route({ iris: '2.0' });
    await waitFor('routing to 2.0', async () => (await predict()).json().model_version === '2.0', 10_000, 50);
    const ms = performance.now() - t0;
    process.stdout.write(`# routing change applied ${ms.toFixed(0)} ms after kubectl apply\n`);
    assert.ok(ms < 5_000, `${ms} ms`);
  });

  test('a routed version the store lacks (its import has not landed): not ready, the others still serve', async () => {
    await route({ iris: '9' });
    await waitFor('not ready', async () => (await svc.app.inject({ url: '/ready' })).statusCode === 503, 10_000, 100);
    const del = await svc.app.inject({ method: 'DELETE', url: '/api/v1/models/iris/versions/1.0' });
    assert.equal(del.statusCode, 409);
    assert.match(del.json().detail, /kubectl delete mv/);
  });

  test('the watch comes back after the API server restarts; the routing in use keeps serving meanwhile', async () => {
    await route({ iris: '1.0' });
    await waitFor('routing to 1.0', async () => (await predict()).json().model_version === '1.0', 10_000, 100);
    await cp.stopApiServer();
    try {
      assert.equal((await predict()).json().model_version, '1.0', 'serving goes on without the API');
      const res = await uploadSample(svc.app, 'wine-forest', '1', {}, 'wine');
      assert.equal(res.statusCode, 503, res.body);
      assert.equal(res.json().code, 'KUBERNETES_UNAVAILABLE');
      assert.equal((await svc.app.inject({ url: '/api/v1/models/wine' })).statusCode, 404, 'the artifact was removed');
    } finally {
      await cp.startApiServer();
    }
    assert.equal((await uploadSample(svc.app, 'wine-forest', '1', {}, 'wine')).statusCode, 201, 'the same upload works once the API is back');
    await route({ iris: '2.0' });
    await waitFor('routing to 2.0 after the restart', async () => (await predict()).json().model_version === '2.0', 20_000, 100);
  });
});

describe('the Open Inference Protocol under the operator', () => {
  test('the repository index lists what serves; load and unload say that ModelVersions decide, over REST and gRPC', async () => {
    await route({ iris: '1.0' });
    await waitFor('routing to 1.0', async () => (await predict()).json().model_version === '1.0', 10_000, 100);
    const expected = [
      { name: 'iris', version: '1.0', state: 'READY', reason: '' },
      { name: 'wine', version: '', state: 'UNAVAILABLE', reason: 'no imported Production ModelVersion routes it' },
    ];
    assert.deepEqual((await svc.app.inject({ method: 'POST', url: '/v2/repository/index' })).json(), expected);
    const rest = await svc.app.inject({ method: 'POST', url: '/v2/repository/models/iris/unload' });
    assert.equal(rest.statusCode, 409);
    assert.match(rest.json().error, /ModelVersions decide what serves/);
    const client = grpcClient(await svc.app.ctx.grpc!.listen());
    try {
      const index = await call<{ models: unknown[] }>(client, 'RepositoryIndex', {});
      assert.deepEqual(index.models, expected);
      for (const method of ['RepositoryModelLoad', 'RepositoryModelUnload']) {
        const err = await call(client, method, { model_name: 'iris' }).then(
          () => assert.fail(`${method} answered`),
          (e: grpc.ServiceError) => e,
        );
        assert.equal(err.code, 9, `${method}: FAILED_PRECONDITION`);
        assert.match(err.details, /ModelVersions decide what serves.*kubectl/);
      }
    } finally {
      client.close();
    }
  });
});
