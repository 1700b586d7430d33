import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { ApiextensionsV1Api, ApiException, CoreV1Api, CustomObjectsApi, RbacAuthorizationV1Api } from '@kubernetes/client-node';
import { startControlPlane, waitFor, type ControlPlane } from './control-plane.ts';

// The API server alone (etcd + kube-apiserver, as envtest runs them): real authentication, real
// RBAC, real CRD schema validation, and data that survives an API server restart.

const TEST = 90_000; // per test
const WAIT = 30_000; // per wait inside a test

/** The HTTP status of a rejected client-node call (0 when it did not fail with one). */
async function statusOf(p: Promise<unknown>): Promise<{ code: number; body: string }> {
  try {
    await p;
    return { code: 200, body: '' };
  } catch (err) {
    if (err instanceof ApiException) {
      return { code: err.code, body: typeof err.body === 'string' ? err.body : JSON.stringify(err.body) };
    }
    throw err;
  }
}

describe('kube-apiserver + etcd (no controllers)', () => {
  let cp: ControlPlane;
  let core: CoreV1Api;

  before(
    async () => {
      cp = await startControlPlane({ log: !!process.env.K8S_TEST_LOG });
      core = cp.kubeConfig().makeApiClient(CoreV1Api);
      process.stderr.write(`# control plane (API only) started in ${cp.startupMs} ms ${JSON.stringify(cp.timings)}\n`);
    },
    { timeout: 900_000 }, // a cold build of the binaries (when not built yet) runs here
  );

  after(async () => {
    if (!cp) return;
    const dir = cp.dir;
    await cp.stop();
    assert.equal(existsSync(dir), false, 'stop() removes the temp folder');
  });

  test('serves the pinned version over TLS to the admin client certificate', { timeout: TEST }, async () => {
    assert.match(cp.server, /^https:\/\/127\.0\.0\.1:\d+$/);
    const v = await cp.kubectl(['version', '-o', 'json']);
    assert.equal(v.code, 0, v.stderr);
    const info = JSON.parse(v.stdout) as { serverVersion: { gitVersion: string }; clientVersion: { gitVersion: string } };
    assert.equal(info.serverVersion.gitVersion, 'v1.34.4');
    assert.equal(info.clientVersion.gitVersion, 'v1.34.4');
    const who = await cp.kubectl(['auth', 'whoami', '-o', 'json']);
    assert.equal(who.code, 0, who.stderr);
    assert.ok((JSON.parse(who.stdout).status.userInfo.groups as string[]).includes('system:masters'));
    const ns = await core.listNamespace();
    assert.ok(ns.items.some((n) => n.metadata?.name === 'kube-system'));
  });

  test('RBAC: a ServiceAccount without a Role is refused (403), with one it is allowed', { timeout: TEST }, async () => {
    const namespace = 'rbac-test';
    await core.createNamespace({ body: { metadata: { name: namespace } } });
    await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name: 'reader' } } });
    await core.createNamespacedConfigMap({ namespace, body: { metadata: { name: 'settings' }, data: { a: '1' } } });

    // A real bound token from the TokenRequest API, signed with --service-account-signing-key-file.
    const sa = await cp.serviceAccountKubeConfig(namespace, 'reader');
    const saCore = sa.kubeConfig().makeApiClient(CoreV1Api);

    const denied = await statusOf(saCore.listNamespacedConfigMap({ namespace }));
    assert.equal(denied.code, 403);
    assert.match(denied.body, /system:serviceaccount:rbac-test:reader.*cannot list resource \\?"configmaps\\?"/);

    const rbac = cp.kubeConfig().makeApiClient(RbacAuthorizationV1Api);
    await rbac.createNamespacedRole({
      namespace,
      body: {
        metadata: { name: 'configmap-reader' },
        rules: [{ apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'list', 'watch'] }],
      },
    });
    await rbac.createNamespacedRoleBinding({
      namespace,
      body: {
        metadata: { name: 'reader-reads-configmaps' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'configmap-reader' },
        subjects: [{ kind: 'ServiceAccount', name: 'reader', namespace }],
      },
    });
    // The RBAC authorizer reads Roles through an informer: allow a moment for it to see them.
    const list = await waitFor(
      'the Role to take effect',
      async () => {
        const r = await saCore.listNamespacedConfigMap({ namespace }).catch(() => undefined);
        return r;
      },
      WAIT,
    );
    assert.ok(list.items.some((c) => c.metadata?.name === 'settings'));
    // Only what the Role grants: secrets stay forbidden, and so does another namespace.
    assert.equal((await statusOf(saCore.listNamespacedSecret({ namespace }))).code, 403);
    assert.equal((await statusOf(saCore.listNamespacedConfigMap({ namespace: 'default' }))).code, 403);
    const can = await cp.kubectl(['auth', 'can-i', 'delete', 'configmaps', '-n', namespace], { kubeconfigPath: sa.path });
    assert.equal(can.stdout.trim(), 'no');
  });

  test('RBAC: client-certificate users and groups, and impersonation', { timeout: TEST }, async () => {
    const alice = await cp.userKubeConfig('alice', ['viewers']);
    const aliceCore = alice.kubeConfig().makeApiClient(CoreV1Api);
    assert.equal((await statusOf(aliceCore.listNamespace())).code, 403);

    const rbac = cp.kubeConfig().makeApiClient(RbacAuthorizationV1Api);
    // (Not the built-in "view": it is an aggregated role, filled in by kube-controller-manager.)
    await rbac.createClusterRole({
      body: {
        metadata: { name: 'pod-viewer' },
        rules: [{ apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch'] }],
      },
    });
    await rbac.createClusterRoleBinding({
      body: {
        metadata: { name: 'viewers-view-pods' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'pod-viewer' },
        subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'Group', name: 'viewers' }],
      },
    });
    await waitFor('alice (group viewers) to read pods', async () => aliceCore.listNamespacedPod({ namespace: 'default' }).catch(() => undefined), WAIT);
    assert.equal((await statusOf(aliceCore.listNamespacedSecret({ namespace: 'default' }))).code, 403);
    const who = await cp.kubectl(['auth', 'whoami', '-o', 'jsonpath={.status.userInfo.username} {.status.userInfo.groups}'], { kubeconfigPath: alice.path });
    assert.equal(who.stdout, 'alice ["viewers","system:authenticated"]', who.stderr);

    const bob = cp.impersonatedKubeConfig('bob').makeApiClient(CoreV1Api);
    const bobList = await statusOf(bob.listNamespacedPod({ namespace: 'default' }));
    assert.equal(bobList.code, 403);
    assert.match(bobList.body, /User \\?"bob\\?" cannot list/);
  });

  test('a CRD installed through the API is served and validates against its schema', { timeout: TEST }, async () => {
    const ext = cp.kubeConfig().makeApiClient(ApiextensionsV1Api);
    await ext.createCustomResourceDefinition({
      body: {
        metadata: { name: 'widgets.test.analytics.dev' },
        spec: {
          group: 'test.analytics.dev',
          scope: 'Namespaced',
          names: { plural: 'widgets', singular: 'widget', kind: 'Widget', shortNames: ['wd'] },
          versions: [
            {
              name: 'v1',
              served: true,
              storage: true,
              subresources: { status: {} },
              schema: {
                openAPIV3Schema: {
                  type: 'object',
                  properties: {
                    spec: {
                      type: 'object',
                      required: ['model', 'replicas'],
                      properties: {
                        model: { type: 'string', pattern: '^[a-z0-9-]+$' },
                        replicas: { type: 'integer', minimum: 1, maximum: 10 },
                        stage: { type: 'string', _enum: ['Production', 'Staging', 'Archived'] },
                      },
                    },
                    status: { type: 'object', x_kubernetes_preserve_unknown_fields: true },
                  },
                },
              },
            },
          ],
        },
      },
    });
    await waitFor(
      'the CRD to be Established',
      async () => {
        const crd = await ext.readCustomResourceDefinition({ name: 'widgets.test.analytics.dev' });
        return crd.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True');
      },
      WAIT,
    );

    const custom = cp.kubeConfig().makeApiClient(CustomObjectsApi);
    const target = { group: 'test.analytics.dev', version: 'v1', namespace: 'default', plural: 'widgets' };
    // Discovery can lag behind Established for a moment.
    await waitFor('widgets to be served', async () => custom.listNamespacedCustomObject(target).catch(() => undefined), WAIT);

    await custom.createNamespacedCustomObject({
      ...target,
      body: { apiVersion: 'test.analytics.dev/v1', kind: 'Widget', metadata: { name: 'good' }, spec: { model: 'iris', replicas: 2, stage: 'Production' } },
    });

    const bad = await statusOf(
      custom.createNamespacedCustomObject({
        ...target,
        body: { apiVersion: 'test.analytics.dev/v1', kind: 'Widget', metadata: { name: 'bad' }, spec: { model: 'Iris!', replicas: 0, stage: 'Live' } },
      }),
    );
    assert.equal(bad.code, 422, bad.body);
    assert.match(bad.body, /spec\.replicas/);
    assert.match(bad.body, /spec\.model/);
    assert.match(bad.body, /spec\.stage/);

    const missing = await statusOf(
      custom.createNamespacedCustomObject({
        ...target,
        body: { apiVersion: 'test.analytics.dev/v1', kind: 'Widget', metadata: { name: 'incomplete' }, spec: { model: 'iris' } },
      }),
    );
    assert.equal(missing.code, 422);
    assert.match(missing.body, /spec\.replicas.*Required value/);

    const got = await cp.kubectl(['get', 'wd', '-o', 'jsonpath={.items[*].metadata.name}']);
    assert.equal(got.code, 0, got.stderr);
    assert.equal(got.stdout, 'good');
  });

  test('the API server restarted via stopApiServer/startApiServer answers with the data still there', { timeout: 120_000 }, async () => {
    await core.createNamespacedConfigMap({
      namespace: 'default',
      body: { metadata: { name: 'survivor' }, data: { model: 'iris', version: '3' } },
    });
    await cp.stopApiServer();
    await assert.rejects(core.readNamespacedConfigMap({ name: 'survivor', namespace: 'default' }), 'no API server while stopped');
    const t0 = performance.now();
    await cp.startApiServer();
    process.stderr.write(`# kube-apiserver restarted in ${Math.round(performance.now() - t0)} ms\n`);
    // The same client (same URL and port) works again.
    const cm = await core.readNamespacedConfigMap({ name: 'survivor', namespace: 'default' });
    assert.deepEqual(cm.data, { model: 'iris', version: '3' });
    // Earlier objects (CRD and its custom objects, RBAC) are there too, and writes work.
    const got = await cp.kubectl(['get', 'widgets.test.analytics.dev', 'good', '-o', 'jsonpath={.spec.replicas}']);
    assert.equal(got.stdout, '2', got.stderr);
    await core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'after-restart' } } });
  });
});
