import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { modelVersionName } from '../../contract/names.ts';
import { serviceRules } from '../../contract/rbac.ts';
import { kubernetesModelVersions } from '../../service/kubernetes/model-versions.ts';
import type { ControlPlane } from '../k8s/control-plane.ts';
import { startService, uploadSample, type TestService } from '../helpers/service.ts';
import { getMv, grantRole, ns, startCluster } from './helpers.ts';

// The service with CONTROL_PLANE=kubernetes against a real API server, as its own ServiceAccount
// with the Role from operator/rbac.ts: an upload stores the artifact and creates the
// ModelVersion; promote asks for the Production stage.

let cp: ControlPlane;
let svc: TestService;
before(async () => {
  cp = await startCluster({ controllers: false });
  const user = await grantRole(cp, 'analytics-api', serviceRules);
  svc = await startService(
    { CONTROL_PLANE: 'kubernetes', POD_NAMESPACE: ns, ROUTING_FILE: '/nonexistent/routing.json' },
    { modelVersions: kubernetesModelVersions(ns, cp.impersonatedKubeConfig(user)) },
  );
});
after(async () => {
  await svc?.close();
  await cp?.stop();
});

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
  // Serving follows the operator's routing, not the upload: nothing routed yet.
  assert.equal((await svc.app.inject({ method: 'POST', url: '/api/v1/predict/iris', payload: { features: {} } })).statusCode, 404);
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

test('when the ModelVersion cannot be created, nothing is kept and the client is told to retry', async () => {
  await cp.stopApiServer();
  try {
    const res = await uploadSample(svc.app, 'wine-forest', '1', {}, 'wine');
    assert.equal(res.statusCode, 503, res.body);
    assert.equal(res.json().code, 'KUBERNETES_UNAVAILABLE');
    assert.equal((await svc.app.inject({ url: '/api/v1/models/wine' })).statusCode, 404, 'the artifact was removed');
  } finally {
    await cp.startApiServer();
  }
  assert.equal((await uploadSample(svc.app, 'wine-forest', '1', {}, 'wine')).statusCode, 201, 'the same upload works once the API is back');
});
