import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { BatchV1Api, CoreV1Api } from '@kubernetes/client-node';
import type { KubeConfig, V1CronJob } from '@kubernetes/client-node';
import { LABELS, OPERATOR_NAME, ROUTING_CONFIGMAP, ROUTING_HASH_ANNOTATION, ROUTING_KEY, backupCronJobName } from '../../contract/names.ts';
import { operatorRules } from '../../contract/rbac.ts';
import { routingHash, type Routing } from '../../contract/routing.ts';
import { waitFor, type ControlPlane } from '../k8s/control-plane.ts';
import {
  createServiceDeployment,
  getDeployment,
  getMv,
  grantRole,
  kubeconfigVia,
  kubectlApply,
  modelConfigMap,
  modelFeatures,
  modelFile,
  modelVersion,
  ns,
  FAKE_IMPORT_SHA256,
  sha256,
  startCluster,
  startOperator,
  startTcpProxy,
  timed,
  waitForPhase,
  type OperatorProcess,
  type TcpProxy,
} from './helpers.ts';

// A ModelVersion's life on a real control plane (kube-apiserver, etcd, kube-controller-manager,
// kube-scheduler, kwok): imported by a Job, routed, superseded, rolled back, archived; through
// dropped connections and an API server restart; with the operator running as `node
// operator/main.ts` under its least-privilege ServiceAccount. kwok runs no containers: its fake
// import pods report a result (helpers.ts, sha256 FAKE_IMPORT_SHA256), and no service pod ever
// reports a model loaded, so a routed version stays Progressing (NoReadyPods). Real imports, real
// pods and Serving are tested on the real node (test/e2e/).

const TEST = 180_000;
const WAIT = 90_000;

describe('ModelVersion lifecycle (controllers + kwok, fake import pods)', () => {
  let cp: ControlPlane;
  let kc: KubeConfig;
  let op: OperatorProcess;
  let proxy: TcpProxy;
  let v1Bytes: Buffer;
  let v2Bytes: Buffer;

  const routing = async (): Promise<Routing & { hash: string }> => {
    const cm = await kc.makeApiClient(CoreV1Api).readNamespacedConfigMap({ name: ROUTING_CONFIGMAP, namespace: ns });
    const text = cm.data![ROUTING_KEY]!;
    return { ...(JSON.parse(text) as Routing), hash: routingHash(text) };
  };
  const routedVersion = async (model: string) => (await routing()).models[model]?.version;
  const cronJob = (model: string): Promise<V1CronJob | undefined> =>
    kc
      .makeApiClient(BatchV1Api)
      .readNamespacedCronJob({ name: backupCronJobName(model), namespace: ns })
      .catch(() => undefined);
  /** Routed, and waiting for a service pod to report it loaded (kwok has none). */
  const routed = (name: string) =>
    waitForPhase(kc, name, 'Progressing', WAIT).then(() =>
      waitFor(
        `${name} routed`,
        async () => {
          const now = await getMv(kc, name);
          return now?.status?.conditions?.find((c) => c.type === 'Serving')?.reason === 'NoReadyPods' && now;
        },
        WAIT,
      ),
    );
  /** The operator never writes the Deployment: promotion happens in the pods, without a restart. */
  const deploymentUntouched = async () => {
    const d = await getDeployment(kc);
    assert.equal(d.metadata?.generation, 1, 'the Deployment spec never changed');
    assert.equal(d.spec?.template?.metadata?.annotations?.[ROUTING_HASH_ANNOTATION], undefined);
    assert.ok(!d.metadata?.managedFields?.some((f) => f.manager === 'analytics-operator'), "no field of it is the operator's");
  };
  const events = async (name: string) =>
    (
      await kc.makeApiClient(CoreV1Api).listNamespacedEvent({ namespace: ns, fieldSelector: `involvedObject.name=${name},involvedObject.kind=ModelVersion` })
    ).items.map((e) => e.reason);

  before(
    async () => {
      cp = await startCluster();
      kc = cp.kubeConfig();
      await createServiceDeployment(kc, 2);
      // The operator as it runs in the cluster: its ServiceAccount's token, the Role from rbac.ts.
      await grantRole(cp, OPERATOR_NAME, operatorRules);
      const token = await cp.serviceAccountKubeConfig(ns, OPERATOR_NAME);
      // Through a TCP proxy, so a test can drop its connections.
      proxy = await startTcpProxy(Number(new URL(cp.server).port));
      const kubeconfigPath = await kubeconfigVia(token.path, proxy.port, cp.dir);
      v1Bytes = await modelFile('iris-logreg');
      v2Bytes = await modelFile('iris-mlp');
      const { ms } = await timed(async () => {
        op = await startOperator({ ...cp, kubeconfigPath }, 'lifecycle');
      });
      process.stderr.write(`# control plane ready in ${cp.startupMs} ms, operator ready in ${ms} ms\n`);
    },
    { timeout: 900_000 },
  );

  after(async () => {
    if (op) {
      const code = await op.stop();
      if (code !== 0) process.stderr.write(op.output().slice(-20_000));
    }
    await proxy?.close();
    await cp?.stop();
  });

  test("v1 from a ConfigMap: Job → Imported (the pod's report) → routed → Progressing; the Deployment untouched", { timeout: TEST }, async () => {
    const features = await modelFeatures('iris-logreg');
    await kubectlApply(
      cp,
      modelConfigMap('iris-v1', 'model.onnx', v1Bytes),
      modelVersion('iris-1', {
        model: 'iris',
        version: '1',
        source: { configMapRef: { name: 'iris-v1', key: 'model.onnx' } },
        sha256: sha256(v1Bytes),
        features,
        stage: 'Production',
      }),
    );
    const { value: mv, ms } = await timed(() => routed('iris-1'));
    process.stderr.write(`# iris-1 applied → imported (fake pod) and routed in ${ms} ms\n`);
    const cond = Object.fromEntries(mv.status!.conditions!.map((c) => [c.type, c]));
    assert.equal(cond.Imported?.status, 'True');
    assert.equal(cond.Serving?.status, 'False');
    assert.equal(cond.Ready?.status, 'False');
    for (const c of Object.values(cond)) assert.equal(c.observedGeneration, mv.metadata.generation);
    // What the import pod reported (kwok's fake pod: the --sha256 it was given, a size of 0).
    assert.deepEqual(mv.status?.artifact, { path: 'production/iris/1/model.onnx', sha256: sha256(v1Bytes), sizeBytes: 0 });
    assert.deepEqual(mv.status?.features, features);
    assert.equal(mv.status?.servingSince, undefined);
    assert.equal(mv.status?.url, undefined, 'no url until a pod serves it');
    assert.deepEqual(mv.metadata.finalizers, ['serving.analytics.dev/finalizer']);
    // The import Job: the service image's CLI, the ConfigMap mounted, the models PVC at /app/models.
    const job = await kc.makeApiClient(BatchV1Api).readNamespacedJob({ name: mv.status!.importJob!, namespace: ns });
    assert.ok(job.status?.conditions?.some((c) => c.type === 'Complete' && c.status === 'True'));
    const container = job.spec!.template.spec!.containers[0]!;
    assert.deepEqual(container.command, ['analytics-api']);
    assert.deepEqual(container.args?.slice(0, 5), ['import', '--model', 'iris', '--version', '1']);
    assert.ok(container.args?.includes('--sha256') && container.args.includes('--file'));
    assert.deepEqual(container.volumeMounts?.find((m) => m.name === 'models')?.mountPath, '/app/models');
    const volumes = job.spec!.template.spec!.volumes!;
    assert.equal(volumes.find((v) => v.name === 'models')?.persistentVolumeClaim?.claimName, 'analytics-models');
    assert.deepEqual(
      volumes.find((v) => v.name === 'source')?.configMap?.items?.map((i) => [i.key, i.path]),
      [['model.onnx', 'model.onnx']],
    );
    assert.deepEqual(
      job.metadata?.ownerReferences?.map((o) => [o.kind, o.name, o.controller]),
      [['ModelVersion', 'iris-1', true]],
    );
    // The routing says v1, with what the service needs to load it.
    const r = await routing();
    assert.deepEqual(r.models, { iris: { version: '1', sha256: sha256(v1Bytes), path: 'production/iris/1/model.onnx', features } });
    await deploymentUntouched();
    // The backup CronJob of the model.
    const cj = (await cronJob('iris'))!;
    assert.equal(cj.spec?.schedule, '0 2 * * *');
    assert.equal(cj.spec?.concurrencyPolicy, 'Forbid');
    assert.equal(cj.spec?.suspend, false);
    assert.deepEqual(
      cj.metadata?.ownerReferences?.map((o) => o.name),
      ['iris-1'],
    );
    const pod = cj.spec!.jobTemplate.spec!.template.spec!;
    assert.deepEqual(pod.initContainers?.[0]?.args, ['backup', 'create', '--model', 'iris', '--dest', '/backups', '--models-dir', '/app/models']);
    assert.deepEqual(pod.containers[0]?.args, ['backup', 'prune', '--model', 'iris', '--dest', '/backups', '--retention-days', '7']);
    assert.deepEqual(pod.volumes?.map((v) => v.persistentVolumeClaim?.claimName).filter(Boolean), ['analytics-models', 'analytics-backups']);
    // Events a person sees in `kubectl describe mv iris-1`.
    await waitFor(
      'events of iris-1',
      async () => {
        const reasons = await events('iris-1');
        return ['ImportStarted', 'Imported', 'Promoted', 'BackupScheduled'].every((r) => reasons.includes(r));
      },
      20_000,
    );
  });

  test('v2 Production: the routing moves to v2, v1 stands by, the CronJob is owned by both', { timeout: TEST }, async () => {
    await kubectlApply(
      cp,
      modelConfigMap('iris-v2', 'model.onnx', v2Bytes),
      modelVersion('iris-2', {
        model: 'iris',
        version: '2',
        source: { configMapRef: { name: 'iris-v2', key: 'model.onnx' } },
        sha256: sha256(v2Bytes),
        stage: 'Production',
        backup: { retentionDays: 14 },
      }),
    );
    await routed('iris-2');
    const v1 = await waitForPhase(kc, 'iris-1', 'Standby', WAIT);
    assert.match(v1.status!.message!, /iris is served by the higher version 2 \(ModelVersion iris-2\)/);
    assert.equal(v1.status?.servingSince, undefined);
    assert.equal(await routedVersion('iris'), '2');
    await deploymentUntouched();
    await waitFor(
      'CronJob owned by both, retention from the newest',
      async () => {
        const cj = await cronJob('iris');
        const owners = cj?.metadata?.ownerReferences?.map((o) => o.name).sort();
        return JSON.stringify(owners) === '["iris-1","iris-2"]' && cj?.spec?.jobTemplate.spec?.template.spec?.containers[0]?.args?.at(-1) === '14';
      },
      WAIT,
    );
  });

  test('a Staging version imports and does not serve; a duplicate version is refused', { timeout: TEST }, async () => {
    await kubectlApply(cp, modelVersion('iris-3-staging', { model: 'iris', version: '3', source: { url: 'https://models.example.com/iris/3.onnx' } }));
    const staged = await waitForPhase(kc, 'iris-3-staging', 'Imported', WAIT);
    assert.equal(staged.status?.artifact?.sha256, FAKE_IMPORT_SHA256);
    assert.equal(staged.status?.conditions?.find((c) => c.type === 'Serving')?.reason, 'NotProduction');
    await kubectlApply(
      cp,
      modelVersion('iris-3-again', { model: 'iris', version: '3', source: { url: 'https://elsewhere.example.com/iris.onnx' }, stage: 'Production' }),
    );
    const dup = await waitForPhase(kc, 'iris-3-again', 'Failed', WAIT);
    assert.match(dup.status!.message!, /ModelVersion iris-3-staging already declares iris version 3; versions are immutable/);
    assert.equal(await routedVersion('iris'), '2');
    await cp.kubectl(['delete', 'mv', 'iris-3-again', 'iris-3-staging', '-n', ns, '--wait=true', '--timeout=60s']);
  });

  test('deleting v2 rolls back to v1; the finalizer updates routing first, then releases the object', { timeout: TEST }, async () => {
    const del = await cp.kubectl(['delete', 'mv', 'iris-2', '-n', ns, '--wait=false']);
    assert.equal(del.code, 0, del.stderr);
    const { ms } = await timed(() => waitFor('iris-2 gone', async () => (await getMv(kc, 'iris-2')) === undefined, WAIT));
    // When the object went, the routing had already left it.
    assert.equal(await routedVersion('iris'), '1');
    process.stderr.write(`# rollback: iris-2 deleted → released in ${ms} ms\n`);
    await routed('iris-1');
    await waitFor('a RolledBack event on iris-1', async () => (await events('iris-1')).includes('RolledBack'), 20_000);
    await waitFor(
      'CronJob owned by iris-1 alone',
      async () => JSON.stringify((await cronJob('iris'))?.metadata?.ownerReferences?.map((o) => o.name)) === '["iris-1"]',
      WAIT,
    );
  });

  test('a ConfigMap source that does not exist yet waits (Pending), then imports', { timeout: TEST }, async () => {
    const wine = await modelFile('wine-forest');
    await kubectlApply(
      cp,
      modelVersion('wine-1', { model: 'wine', version: '1', source: { configMapRef: { name: 'wine-v1', key: 'model.onnx' } }, stage: 'Production' }),
    );
    const pending = await waitForPhase(kc, 'wine-1', 'Pending', WAIT);
    assert.match(pending.status!.message!, /ConfigMap wine-v1 not found; create it with the ONNX file under key model\.onnx/);
    await kubectlApply(cp, modelConfigMap('wine-v1', 'model.onnx', wine));
    await routed('wine-1');
    assert.deepEqual(Object.keys((await routing()).models).sort(), ['iris', 'wine']);
  });

  test('dropped connections: the watches come back and what changed meanwhile is reconciled', { timeout: TEST }, async () => {
    const restartsBefore = await op.metric('analytics_operator_watch_restarts_total');
    assert.ok(proxy.connections() > 0);
    proxy.dropAll(); // every watch and the lease's connection reset at once
    const arch = await cp.kubectl(['patch', 'mv', 'iris-1', '-n', ns, '--type=merge', '-p', '{"spec":{"stage":"Archived"}}']);
    assert.equal(arch.code, 0, arch.stderr);
    await waitForPhase(kc, 'iris-1', 'Archived', WAIT);
    await waitFor('iris no longer routed', async () => (await routedVersion('iris')) === undefined, WAIT);
    // Unreachable for a while (connections refused), with a change made meanwhile.
    proxy.pause();
    const back = await cp.kubectl(['patch', 'mv', 'iris-1', '-n', ns, '--type=merge', '-p', '{"spec":{"stage":"Production"}}']);
    assert.equal(back.code, 0, back.stderr);
    await new Promise((r) => setTimeout(r, 3000));
    proxy.resume();
    await routed('iris-1');
    assert.equal(await routedVersion('iris'), '1');
    assert.ok((await op.metric('analytics_operator_watch_restarts_total')) > restartsBefore, 'the watches ended and were started again');
    assert.equal(op.child.exitCode, null);
  });

  test('changes made while the API server restarts are reconciled', { timeout: TEST }, async () => {
    const restartsBefore = await op.metric('analytics_operator_watch_restarts_total');
    const listsBefore = await op.metric('analytics_operator_informer_lists_total');
    const t0 = performance.now();
    await cp.stopApiServer();
    await new Promise((r) => setTimeout(r, 3000)); // the operator's watches fail meanwhile
    await cp.startApiServer();
    const restarted = performance.now();
    // Right after the restart, before the operator's watches are back: archive wine, add iris v4.
    const v4 = await modelFile('iris-per-feature');
    await kubectlApply(
      cp,
      modelConfigMap('iris-v4', 'model.onnx', v4),
      modelVersion('iris-4', { model: 'iris', version: '4', source: { configMapRef: { name: 'iris-v4', key: 'model.onnx' } }, stage: 'Production' }),
    );
    const arch = await cp.kubectl(['patch', 'mv', 'wine-1', '-n', ns, '--type=merge', '-p', '{"spec":{"stage":"Archived"}}']);
    assert.equal(arch.code, 0, arch.stderr);
    await routed('iris-4');
    process.stderr.write(
      `# API server down and up in ${Math.round(restarted - t0)} ms; iris-4 applied after it → routed in ${Math.round(performance.now() - restarted)} ms\n`,
    );
    await waitForPhase(kc, 'wine-1', 'Archived', WAIT);
    await waitForPhase(kc, 'iris-1', 'Standby', WAIT);
    const r = await routing();
    assert.deepEqual(Object.keys(r.models), ['iris']);
    assert.equal(r.models.iris?.version, '4');
    assert.ok((await op.metric('analytics_operator_watch_restarts_total')) > restartsBefore, 'the watches failed and were started again');
    // The new API server's watch cache starts at the current revision: resuming a watch from the old
    // resourceVersion answers 410 Gone, and the informers list again.
    const relists = (await op.metric('analytics_operator_informer_lists_total')) - listsBefore;
    process.stderr.write(`# full relists after the restart (410 Gone from the new watch cache): ${relists}\n`);
    assert.ok(relists > 0, 'the informers relisted after 410 Gone');
    assert.equal(op.child.exitCode, null, 'the operator kept running (it kept its lease)');
  });

  test("metrics and probes answer, with controller-runtime's names", { timeout: TEST }, async () => {
    assert.deepEqual(await op.get('/healthz'), { status: 200, body: 'ok\n' });
    const ready = await op.get('/readyz?verbose');
    assert.equal(ready.status, 200);
    assert.match(ready.body, /\[\+\]informer-modelversions ok/);
    const metrics = (await op.get('/metrics')).body;
    for (const name of [
      'controller_runtime_reconcile_total',
      'controller_runtime_reconcile_errors_total',
      'controller_runtime_reconcile_time_seconds_bucket',
      'controller_runtime_max_concurrent_reconciles',
      'controller_runtime_active_workers',
      'workqueue_depth',
      'workqueue_adds_total',
      'workqueue_retries_total',
      'workqueue_queue_duration_seconds_bucket',
      'workqueue_work_duration_seconds_bucket',
      'workqueue_unfinished_work_seconds',
      'workqueue_longest_running_processor_seconds',
      'leader_election_master_status',
      'analytics_operator_model_versions',
      'process_cpu_seconds_total',
    ])
      assert.match(metrics, new RegExp(`^${name}[{ ]`, 'm'), name);
    assert.ok((await op.metric('controller_runtime_reconcile_total', { controller: 'modelversion', result: 'success' })) > 0);
    assert.ok((await op.metric('controller_runtime_reconcile_total', { controller: 'routing', result: 'success' })) > 0);
    assert.ok((await op.metric('workqueue_adds_total', { name: 'modelversion' })) > 0);
    assert.equal(await op.metric('leader_election_master_status', { name: 'analytics-operator-leader' }), 1);
    assert.equal(await op.metric('analytics_operator_model_versions', { phase: 'Progressing' }), 1);
    assert.equal(await op.metric('analytics_operator_model_versions', { phase: 'Standby' }), 1);
    assert.equal(await op.metric('analytics_operator_model_versions', { phase: 'Archived' }), 1);
    assert.equal((await op.get('/nope')).status, 404);
  });

  test('deleting every version empties the routing, and the garbage collector takes the CronJobs', { timeout: TEST }, async () => {
    const del = await cp.kubectl(['delete', 'mv', '--all', '-n', ns, '--timeout=90s']);
    assert.equal(del.code, 0, del.stderr);
    assert.deepEqual((await routing()).models, {});
    await waitFor('CronJobs collected', async () => !(await cronJob('iris')) && !(await cronJob('wine')), WAIT);
    await waitFor(
      'import Jobs collected',
      async () => {
        const jobs = await kc.makeApiClient(BatchV1Api).listNamespacedJob({ namespace: ns, labelSelector: `${LABELS.component}=model-import` });
        return jobs.items.length === 0;
      },
      WAIT,
    );
    await deploymentUntouched();
  });
});
