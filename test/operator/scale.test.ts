import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { BatchV1Api, CoreV1Api, CustomObjectsApi } from '@kubernetes/client-node';
import type { KubeConfig } from '@kubernetes/client-node';
import { GROUP, PLURAL, VERSION } from '../../contract/model-version.ts';
import type { ModelVersion } from '../../contract/model-version.ts';
import { LABELS, ROUTING_CONFIGMAP, ROUTING_HASH_ANNOTATION, ROUTING_KEY } from '../../contract/names.ts';
import { routingHash, type Routing } from '../../contract/routing.ts';
import { waitFor, type ControlPlane } from '../k8s/control-plane.ts';
import { createServiceDeployment, getDeployment, listMvs, modelVersion, ns, startCluster, startOperator, type OperatorProcess } from './helpers.ts';

// 200 ModelVersions (40 models × 5 versions: 1-3 Staging, 4 and 5 Production) converge in bounded
// time: every one imported by its own Job (kwok's fake import pods report a result), 5 routed and
// 4 standing by for each model, one routing with 40 models, the Deployment never touched (the pods
// follow the routing in place), one backup CronJob per model. 5 stays Progressing: kwok runs no
// service pod that could report it loaded. Then an operator restart finds nothing to do: no
// duplicate Jobs or CronJobs, no status rewritten.

const MODELS = 40;
const VERSIONS = 5;
const TOTAL = MODELS * VERSIONS;
const CONVERGE_MS = 240_000;

const modelName = (i: number) => `m${String(i).padStart(2, '0')}`;
const expectedPhase = (v: number) => (v === VERSIONS ? 'Progressing' : v === VERSIONS - 1 ? 'Standby' : 'Imported');

describe(`${TOTAL} ModelVersions`, () => {
  let cp: ControlPlane;
  let kc: KubeConfig;
  let op: OperatorProcess;

  before(
    async () => {
      cp = await startCluster();
      kc = cp.kubeConfig();
      await createServiceDeployment(kc, 1);
      op = await startOperator(cp, 'scale-a');
    },
    { timeout: 900_000 },
  );

  after(async () => {
    await op?.stop();
    await cp?.stop();
  });

  const converged = async (): Promise<string | true> => {
    const mvs = await listMvs(kc);
    if (mvs.length !== TOTAL) return `${mvs.length} ModelVersions`;
    // The winners routed (not merely waiting for the routing): waiting for a service pod.
    const routed = (mv: ModelVersion) => mv.status?.conditions?.find((c) => c.type === 'Serving')?.reason === 'NoReadyPods';
    const wrong = mvs.filter(
      (mv) =>
        mv.status?.phase !== expectedPhase(Number(mv.spec.version)) ||
        mv.status?.observedGeneration !== mv.metadata.generation ||
        (Number(mv.spec.version) === VERSIONS && !routed(mv)),
    );
    if (wrong.length > 0) return `${wrong.length} not converged, e.g. ${wrong[0]!.metadata.name}: ${wrong[0]!.status?.phase ?? 'no status'}`;
    return true;
  };

  test(`${TOTAL} ModelVersions converge in bounded time`, { timeout: CONVERGE_MS + 60_000 }, async () => {
    const custom = kc.makeApiClient(CustomObjectsApi);
    const t0 = performance.now();
    // Models in parallel, each model's versions in order (so version 5 is the newest).
    await Promise.all(
      Array.from({ length: MODELS }, async (_, i) => {
        for (let v = 1; v <= VERSIONS; v++) {
          const body = modelVersion(`${modelName(i)}-${v}`, {
            model: modelName(i),
            version: String(v),
            source: { url: `https://models.example.com/${modelName(i)}/${v}.onnx` },
            stage: v >= VERSIONS - 1 ? 'Production' : 'Staging',
          });
          await custom.createNamespacedCustomObject({ group: GROUP, version: VERSION, plural: PLURAL, namespace: ns, body });
        }
      }),
    );
    const created = performance.now();
    let last: string | true = '';
    await waitFor(
      `${TOTAL} ModelVersions converged`,
      async () => {
        last = await converged();
        return last === true || undefined;
      },
      CONVERGE_MS,
    ).catch((err: Error) => {
      throw new Error(`${err.message}; last: ${last}`);
    });
    const cm = await kc.makeApiClient(CoreV1Api).readNamespacedConfigMap({ name: ROUTING_CONFIGMAP, namespace: ns });
    const text = cm.data![ROUTING_KEY]!;
    const routing = JSON.parse(text) as Routing;
    assert.equal(Object.keys(routing.models).length, MODELS);
    for (let i = 0; i < MODELS; i++) assert.equal(routing.models[modelName(i)]?.version, String(VERSIONS));
    assert.equal(cm.metadata?.annotations?.[ROUTING_HASH_ANNOTATION], routingHash(text));
    const mvs = await listMvs(kc);
    const d = await getDeployment(kc);
    assert.equal(d.metadata?.generation, 1, 'the Deployment spec never changed: no promotion restarts the pods');
    assert.equal(d.spec?.template?.metadata?.annotations?.[ROUTING_HASH_ANNOTATION], undefined);
    for (let i = 0; i < MODELS; i++) {
      const winner = mvs.find((mv) => mv.metadata.name === `${modelName(i)}-${VERSIONS}`);
      assert.match(winner?.status?.message ?? '', /^routed; no ready pod/, `${modelName(i)}: routed, waiting for a service pod`);
    }
    const done = performance.now();
    const jobs = await kc.makeApiClient(BatchV1Api).listNamespacedJob({ namespace: ns, labelSelector: `${LABELS.component}=model-import` });
    assert.equal(jobs.items.length, TOTAL);
    const cronJobs = await kc.makeApiClient(BatchV1Api).listNamespacedCronJob({ namespace: ns });
    assert.equal(cronJobs.items.length, MODELS);
    for (const cj of cronJobs.items) assert.equal(cj.metadata?.ownerReferences?.length, VERSIONS, cj.metadata?.name);
    const seconds = (ms: number) => (ms / 1000).toFixed(1);
    // Where the time goes: the Jobs (kube-controller-manager's job controller, the scheduler, kwok).
    const times = (xs: Array<Date | string | undefined>) => xs.map((x) => new Date(x ?? 0).getTime());
    const jobSpan =
      Math.max(...times(jobs.items.map((j) => j.status?.completionTime))) - Math.min(...times(jobs.items.map((j) => j.metadata?.creationTimestamp)));
    process.stderr.write(
      `# ${TOTAL} ModelVersions: created in ${seconds(created - t0)} s, all converged (${TOTAL} Jobs complete, ${MODELS} routed) ${seconds(done - t0)} s after the first create; ` +
        `first Job created → last Job complete: ${seconds(jobSpan)} s\n`,
    );
    const errors = await op.metric('controller_runtime_reconcile_errors_total');
    process.stderr.write(
      `# reconciles: ${await op.metric('controller_runtime_reconcile_total')} (${errors} errors, ${await op.metric('workqueue_retries_total')} retries)\n`,
    );
  });

  test('kubectl get mv shows the printer columns', { timeout: 60_000 }, async () => {
    const r = await cp.kubectl(['get', 'mv', '-n', ns]);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines.length, TOTAL + 1);
    assert.match(lines[0]!, /^NAME\s+MODEL\s+VERSION\s+STAGE\s+PHASE\s+READY\s+WEIGHT\s+STEP\s+AGE$/);
    for (const [name, row] of [
      ['m00-5', /^m00-5\s+m00\s+5\s+Production\s+Progressing\s+False\s+0\s+\d+[sm]/],
      ['m00-4', /^m00-4\s+m00\s+4\s+Production\s+Standby\s+False\s+0\s+\d+[sm]/],
      ['m00-1', /^m00-1\s+m00\s+1\s+Staging\s+Imported\s+False\s+0\s+\d+[sm]/],
    ] as const)
      assert.ok(
        lines.some((l) => row.test(l)),
        `${name} row in:\n${lines.slice(0, 8).join('\n')}`,
      );
  });

  test('an operator restart converges again with no duplicate objects and no writes', { timeout: 180_000 }, async () => {
    const snapshot = async () => {
      const mvs = await listMvs(kc);
      const batch = kc.makeApiClient(BatchV1Api);
      const jobs = (await batch.listNamespacedJob({ namespace: ns })).items.map((j) => `${j.metadata?.name}/${j.metadata?.uid}`).sort();
      const cronJobs = (await batch.listNamespacedCronJob({ namespace: ns })).items
        .map((c) => `${c.metadata?.name}/${c.metadata?.uid}/${c.metadata?.resourceVersion}`)
        .sort();
      const versions = Object.fromEntries(mvs.map((mv: ModelVersion) => [mv.metadata.name, mv.metadata.resourceVersion]));
      const deployment = (await getDeployment(kc)).metadata?.resourceVersion;
      return { jobs, cronJobs, versions, deployment };
    };
    const before = await snapshot();
    assert.equal(await op.stop(), 0, 'a clean stop');
    op = await startOperator(cp, 'scale-b');
    // The new process reconciles every object once (it enqueues everything when it leads).
    await waitFor(
      'every ModelVersion reconciled by the new operator',
      async () => {
        const reconciled = await op.metric('controller_runtime_reconcile_total', { controller: 'modelversion' });
        const depth = await op.metric('workqueue_depth');
        return reconciled >= TOTAL && depth === 0;
      },
      120_000,
    );
    await new Promise((r) => setTimeout(r, 2000)); // anything it would write has been written by now
    const after = await snapshot();
    assert.equal(after.jobs.length, TOTAL);
    assert.deepEqual(after.jobs, before.jobs, 'the same Jobs, none added');
    assert.deepEqual(after.cronJobs, before.cronJobs, 'the same CronJobs, unchanged');
    assert.deepEqual(after.versions, before.versions, 'no ModelVersion written (status, finalizer)');
    assert.equal(after.deployment, before.deployment, 'the Deployment not stamped again');
    assert.equal(await converged(), true);
    assert.equal(await op.metric('controller_runtime_reconcile_errors_total'), 0);
  });
});
