import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ApiException, AppsV1Api, BatchV1Api, CoordinationV1Api, CoreV1Api, CustomObjectsApi } from '@kubernetes/client-node';
import type { KubeConfig } from '@kubernetes/client-node';
import { API_VERSION, GROUP, KIND, PLURAL, VERSION } from '../../contract/model-version.ts';
import type { ModelVersion } from '../../contract/model-version.ts';
import { loadOperatorConfig } from '../../operator/config.ts';
import { EventRecorder } from '../../operator/runtime/events.ts';
import { KubeClient } from '../../operator/runtime/kube-client.ts';
import { LeaderElector } from '../../operator/runtime/leader-election.ts';
import { createLogger } from '../../operator/runtime/log.ts';
import { Operator } from '../../operator/manager.ts';
import { createModelVersion, setStage } from '../../service/kubernetes/model-versions.ts';
import { FINALIZER, LEADER_LEASE, OPERATOR_NAME, ROUTING_CONFIGMAP, SERVICE_NAME } from '../../contract/names.ts';
import { operatorRules, serviceRules } from '../../contract/rbac.ts';
import { backupCronJob } from '../../operator/builders/backup-cronjob.ts';
import { addFinalizer, removeFinalizer } from '../../operator/builders/finalizer.ts';
import { importJob } from '../../operator/builders/import-job.ts';
import { routingConfigMap } from '../../operator/builders/routing-configmap.ts';
import { waitFor, type ControlPlane } from '../k8s/control-plane.ts';
import { createServiceDeployment, getMv, grantRole, kubectlApply, modelVersion, ns, startCluster } from './helpers.ts';

// The least-privilege rules of operator/rbac.ts on a real API server with RBAC on: Roles bound to
// the two ServiceAccounts, then the operator's and the service's own code run as each (the
// harness's impersonation). Each can do its job, and is refused one step beyond it.

const TEST = 120_000;
const silent = createLogger({ level: 'error', name: 'test', destination: { write: () => {} } });

async function status(p: Promise<unknown>): Promise<number> {
  try {
    await p;
    return 200;
  } catch (err) {
    if (err instanceof ApiException) return err.code;
    throw err;
  }
}

describe('RBAC rules, by impersonation', () => {
  let cp: ControlPlane;
  let admin: KubeConfig;
  let asOperator: KubeConfig;
  let asService: KubeConfig;
  let mv: ModelVersion;

  before(
    async () => {
      cp = await startCluster({ controllers: false });
      admin = cp.kubeConfig();
      asOperator = cp.impersonatedKubeConfig(await grantRole(cp, OPERATOR_NAME, operatorRules));
      asService = cp.impersonatedKubeConfig(await grantRole(cp, SERVICE_NAME, serviceRules));
      await createServiceDeployment(admin, 1);
      await kubectlApply(
        cp,
        { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'api-token', namespace: ns }, stringData: { token: 'secret' } },
        { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'model-source', namespace: ns }, data: { 'model.onnx': 'x' } },
        modelVersion('iris-1', { model: 'iris', version: '1', source: { url: 'https://models.example.com/iris.onnx' }, stage: 'Production' }),
      );
      mv = (await getMv(admin, 'iris-1'))!;
    },
    { timeout: 900_000 },
  );

  after(() => cp?.stop());

  test('the operator can do its job: its own code, run as its ServiceAccount', { timeout: TEST }, async () => {
    const kube = new KubeClient(asOperator);
    const config = loadOperatorConfig({ NAMESPACE: ns });
    // Finalizer and status of a ModelVersion (server-side apply).
    await addFinalizer(kube, mv);
    assert.deepEqual((await getMv(admin, 'iris-1'))?.metadata.finalizers, [FINALIZER]);
    await kube.applyModelVersionStatus(ns, 'iris-1', { phase: 'Importing', message: 'rbac test' });
    assert.equal((await getMv(admin, 'iris-1'))?.status?.phase, 'Importing');
    // Owned objects: the import Job, the backup CronJob, the routing ConfigMap.
    const fresh = (await getMv(admin, 'iris-1'))!;
    await kube.apply(importJob(fresh, config));
    await kube.apply(backupCronJob('iris', [fresh], ns, config));
    await kube.apply(routingConfigMap(ns, '{"models":{}}\n'));
    // What it reads: source ConfigMaps, import Jobs' pods, the service's EndpointSlices.
    await kube.core.readNamespacedConfigMap({ name: 'model-source', namespace: ns });
    await kube.core.listNamespacedPod({ namespace: ns });
    await kube.listPlain('discovery.k8s.io', 'v1', 'endpointslices', ns, `kubernetes.io/service-name=${SERVICE_NAME}`);
    // Events, and the Lease (create, renew, release).
    const events = new EventRecorder(kube, OPERATOR_NAME, 'rbac-test', silent);
    events.record(fresh, 'Normal', 'RbacTest', 'recorded as the operator');
    events.record(fresh, 'Normal', 'RbacTest', 'recorded as the operator'); // the count goes up (patch)
    await events.flush();
    const recorded = await admin.makeApiClient(CoreV1Api).listNamespacedEvent({ namespace: ns, fieldSelector: 'reason=RbacTest' });
    assert.equal(recorded.items[0]?.count, 2);
    let leading = false;
    const elector = new LeaderElector({
      kube,
      namespace: ns,
      name: LEADER_LEASE,
      identity: 'rbac-test',
      leaseDurationMs: 5000,
      renewDeadlineMs: 3000,
      retryPeriodMs: 200,
      log: silent,
      onStartedLeading: () => (leading = true),
      onStoppedLeading: () => (leading = false),
    });
    elector.start();
    await waitFor('leading', async () => leading, 10_000);
    await new Promise((r) => setTimeout(r, 600)); // a few renewals
    await elector.stop();
    const lease = await admin.makeApiClient(CoordinationV1Api).readNamespacedLease({ name: LEADER_LEASE, namespace: ns });
    assert.equal(lease.spec?.holderIdentity ?? '', '', 'released');
    await removeFinalizer(kube, (await getMv(admin, 'iris-1'))!);
    assert.deepEqual((await getMv(admin, 'iris-1'))?.metadata.finalizers ?? [], []);
  });

  test('the whole operator starts as its ServiceAccount: every informer lists and watches', { timeout: TEST }, async () => {
    const operator = new Operator({
      config: loadOperatorConfig({ NAMESPACE: ns, METRICS_PORT: '0', METRICS_HOST: '127.0.0.1', IDENTITY: 'rbac-operator' }),
      kc: asOperator,
      log: silent,
    });
    try {
      await operator.start();
      await waitFor('leadership', async () => operator.isLeader(), 20_000);
      const res = await fetch(`http://127.0.0.1:${operator.probePort}/readyz?verbose`);
      assert.equal(res.status, 200, await res.text());
      // It reconciled: the ModelVersion got its finalizer back and a status, the Job exists.
      await waitFor(
        'a reconciled ModelVersion',
        async () => (await getMv(admin, 'iris-1'))?.status?.phase === 'Importing' && (await getMv(admin, 'iris-1'))?.metadata.finalizers?.includes(FINALIZER),
      );
      assert.equal(
        await operator.metrics.reconcileErrors.get().then((m) => m.values.reduce((a, v) => a + v.value, 0)),
        0,
        'no reconcile failed for want of a permission',
      );
    } finally {
      await operator.stop();
    }
  });

  test('the operator is refused one step beyond its job', { timeout: TEST }, async () => {
    const core = asOperator.makeApiClient(CoreV1Api);
    const apps = asOperator.makeApiClient(AppsV1Api);
    const batch = asOperator.makeApiClient(BatchV1Api);
    const custom = asOperator.makeApiClient(CustomObjectsApi);
    const kube = new KubeClient(asOperator);
    const denied: Array<[string, () => Promise<unknown>]> = [
      ['read a Secret', () => core.readNamespacedSecret({ name: 'api-token', namespace: ns })],
      ['list Secrets', () => core.listNamespacedSecret({ namespace: ns })],
      ['delete the Deployment', () => apps.deleteNamespacedDeployment({ name: SERVICE_NAME, namespace: ns })],
      [
        'patch the Deployment',
        () => apps.patchNamespacedDeployment({ name: SERVICE_NAME, namespace: ns, body: [{ op: 'add', path: '/metadata/labels/x', value: 'y' }] }),
      ],
      [
        'create a Deployment',
        () =>
          apps.createNamespacedDeployment({
            namespace: ns,
            body: {
              metadata: { name: 'x' },
              spec: {
                selector: { matchLabels: { a: 'b' } },
                template: { metadata: { labels: { a: 'b' } }, spec: { containers: [{ name: 'x', image: 'x' }] } },
              },
            },
          }),
      ],
      ['delete a ModelVersion', () => custom.deleteNamespacedCustomObject({ group: GROUP, version: VERSION, plural: PLURAL, namespace: ns, name: 'iris-1' })],
      [
        'create a ModelVersion',
        () =>
          custom.createNamespacedCustomObject({
            group: GROUP,
            version: VERSION,
            plural: PLURAL,
            namespace: ns,
            body: { apiVersion: API_VERSION, kind: KIND, metadata: { name: 'x' }, spec: { model: 'x', version: '1', source: { url: 'https://x.example/m' } } },
          }),
      ],
      [
        'write another ConfigMap',
        () => kube.apply({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'model-source', namespace: ns }, data: { 'model.onnx': 'changed' } }),
      ],
      ['delete a ConfigMap', () => core.deleteNamespacedConfigMap({ name: ROUTING_CONFIGMAP, namespace: ns })],
      ['delete a Job', () => batch.deleteCollectionNamespacedJob({ namespace: ns })],
      ['delete a Pod', () => core.deleteCollectionNamespacedPod({ namespace: ns })],
      [
        'take another Lease',
        () =>
          asOperator
            .makeApiClient(CoordinationV1Api)
            .createNamespacedLease({ namespace: ns, body: { metadata: { name: 'kube-scheduler' }, spec: {} } })
            .then(() =>
              asOperator.makeApiClient(CoordinationV1Api).replaceNamespacedLease({
                name: 'kube-scheduler',
                namespace: ns,
                body: { metadata: { name: 'kube-scheduler' }, spec: { holderIdentity: 'x' } },
              }),
            ),
      ],
      ['anything in another namespace', () => core.listNamespacedConfigMap({ namespace: 'default' })],
    ];
    for (const [what, call] of denied) assert.equal(await status(call()), 403, `the operator may not ${what}`);
  });

  test('the service creates ModelVersions, sets their stage and watches the routing, and nothing more', { timeout: TEST }, async () => {
    await createModelVersion(asService, ns, {
      model: 'wine',
      version: '1.0.0',
      storePath: 'production/wine/1.0.0/model.onnx',
      sha256: 'e'.repeat(64),
      stage: 'Staging',
    });
    await setStage(asService, ns, 'wine', '1.0.0', 'Production');
    assert.equal((await getMv(admin, 'wine-1-0-0'))?.spec.stage, 'Production');
    const custom = asService.makeApiClient(CustomObjectsApi);
    await custom.listNamespacedCustomObject({ group: GROUP, version: VERSION, plural: PLURAL, namespace: ns });
    // The routing ConfigMap, by name, as the pods' watch asks for it (a field selector on its name).
    const core = asService.makeApiClient(CoreV1Api);
    await kubectlApply(cp, {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: ROUTING_CONFIGMAP, namespace: ns },
      data: { 'routing.json': '{"models":{}}\n' },
    });
    const listed = await core.listNamespacedConfigMap({ namespace: ns, fieldSelector: `metadata.name=${ROUTING_CONFIGMAP}` });
    assert.deepEqual(
      listed.items.map((c) => c.metadata?.name),
      [ROUTING_CONFIGMAP],
    );
    const denied: Array<[string, () => Promise<unknown>]> = [
      [
        'delete a ModelVersion',
        () => custom.deleteNamespacedCustomObject({ group: GROUP, version: VERSION, plural: PLURAL, namespace: ns, name: 'wine-1-0-0' }),
      ],
      ['update a status', () => new KubeClient(asService).applyModelVersionStatus(ns, 'wine-1-0-0', { phase: 'Serving' })],
      ['read a Secret', () => asService.makeApiClient(CoreV1Api).readNamespacedSecret({ name: 'api-token', namespace: ns })],
      ['write the routing', () => new KubeClient(asService).apply(routingConfigMap(ns, '{"models":{}}\n'))],
      [
        'create a Job',
        () =>
          asService.makeApiClient(BatchV1Api).createNamespacedJob({
            namespace: ns,
            body: { metadata: { name: 'x' }, spec: { template: { spec: { restartPolicy: 'Never', containers: [{ name: 'x', image: 'x' }] } } } },
          }),
      ],
      ['read another ConfigMap', () => asService.makeApiClient(CoreV1Api).readNamespacedConfigMap({ name: 'model-source', namespace: ns })],
      ['list every ConfigMap', () => asService.makeApiClient(CoreV1Api).listNamespacedConfigMap({ namespace: ns })],
    ];
    for (const [what, call] of denied) assert.equal(await status(call()), 403, `the service may not ${what}`);
    assert.equal((await getMv(admin, 'wine-1-0-0'))?.status?.phase, undefined);
  });
});
