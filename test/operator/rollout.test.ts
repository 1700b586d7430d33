import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import type { ModelVersion } from '../../contract/model-version.ts';
import { modelVersionName, SERVICE_NAME } from '../../contract/names.ts';
import { serviceRules } from '../../contract/rbac.ts';
import type { ControlPlane } from '../k8s/control-plane.ts';
import { hostAddress } from '../k8s/host-address.ts';
import { waitFor } from '../helpers/processes.ts';
import { startService, type TestService } from '../helpers/service.ts';
import { FAST_CANARY, IRIS_FEATURES, irisTruth, rolloutModelBytes, traffic, type RolloutModel, type TruthRow } from '../rollout/helpers.ts';
import { getMv, grantRole, kubectlApply, ns, startCluster, startOperator, type OperatorProcess } from './helpers.ts';

// The operator's rollouts (spec.rollout) against real service processes: two service replicas in
// Kubernetes mode on this host (one model store, their own ServiceAccount's Role), the operator as
// `node operator/main.ts`, a real control plane with kwok's fake node for the import Jobs (its
// fake pods report what the import would: here the spec's sha256 of bytes the service stored).
// The service's EndpointSlices are written by the test, naming the two processes on an address of
// the harness's own (host-address.ts: EndpointSlices refuse loopback): kwok runs no pods the
// endpoints controller could list (the real node's e2e covers that part).
// Bounded load through both replicas, with ground-truth feedback from iris' true labels.

describe('rollouts by the operator, against two real service processes', () => {
  let cp: ControlPlane;
  let kc: KubeConfig;
  let op: OperatorProcess;
  let modelsDir: string;
  const replicas: TestService[] = [];
  let rows: TruthRow[];
  let turn = 0;
  let address: string;

  // Predictions alternate between the replicas; feedback goes to the one that answered (each
  // remembers its own predictions here: no Redis).
  const send = async (path: string, body: unknown, headers: Record<string, string>) => {
    const order = path === '/api/v1/feedback' ? replicas : [replicas[turn++ % replicas.length]!];
    let res = await order[0]!.app.inject({ method: 'POST', url: path, payload: body as object, headers });
    if (res.statusCode === 404 && order.length > 1) res = await order[1]!.app.inject({ method: 'POST', url: path, payload: body as object, headers });
    return { status: res.statusCode, body: res.body };
  };
  const upload = async (version: string, model: RolloutModel, extra: Record<string, unknown> = {}) => {
    const res = await replicas[0]!.app.inject({
      method: 'POST',
      url: '/api/v1/models',
      payload: { name: 'iris', version, model_data: (await rolloutModelBytes(model)).toString('base64'), features: IRIS_FEATURES, ...extra },
    });
    assert.equal(res.statusCode, 201, `${model}: ${res.body}`);
  };
  const mv = (version: string) => getMv(kc, modelVersionName('iris', version)) as Promise<ModelVersion>;
  const events = async (version: string) =>
    (
      await kc
        .makeApiClient(CoreV1Api)
        .listNamespacedEvent({ namespace: ns, fieldSelector: `involvedObject.name=${modelVersionName('iris', version)},involvedObject.kind=ModelVersion` })
    ).items.map((e) => `${e.type} ${e.reason}`);

  before(
    async () => {
      cp = await startCluster();
      kc = cp.kubeConfig();
      rows = await irisTruth();
      modelsDir = await mkdtemp(join(tmpdir(), 'analytics-rollout-store-'));
      const user = await grantRole(cp, SERVICE_NAME, serviceRules);
      const host = hostAddress(cp);
      address = host.address;
      for (let i = 0; i < 2; i++) {
        const svc = await startService(
          { CONTROL_PLANE: 'kubernetes', POD_NAMESPACE: ns, MODELS_DIR: modelsDir, GRPC_PORT: 'off', INFERENCE_THREADS: '1' },
          { kubeConfig: cp.impersonatedKubeConfig(user) },
        );
        await svc.app.listen({ host: address, port: 0 });
        replicas.push(svc);
      }
      // One EndpointSlice per replica (each its own port), as the endpoints controller labels them.
      await kubectlApply(
        cp,
        ...replicas.map((svc, i) => ({
          apiVersion: 'discovery.k8s.io/v1',
          kind: 'EndpointSlice',
          metadata: { name: `${SERVICE_NAME}-host-${i}`, namespace: ns, labels: { 'kubernetes.io/service-name': SERVICE_NAME } },
          addressType: 'IPv4',
          ports: [{ name: 'http', port: (svc.app.server.address() as { port: number }).port, protocol: 'TCP' }],
          endpoints: [{ addresses: [address], conditions: { ready: true }, targetRef: { kind: 'Pod', name: `host-replica-${i}`, namespace: ns } }],
        })),
      );
      op = await startOperator(cp, 'rollouts');
      await upload('1', 'iris-logreg');
      await waitFor('iris 1 Serving on both replicas', async () => (await mv('1'))?.status?.phase === 'Serving', 60_000);
    },
    { timeout: 900_000 },
  );

  after(async () => {
    const code = await op?.stop();
    if (code !== 0 && op) process.stderr.write(op.output().slice(-20_000));
    for (const svc of replicas) await svc.app.close();
    await cp?.stop();
    if (modelsDir) await rm(modelsDir, { recursive: true, force: true });
  });

  test('a canary of a good version walks 20 → 50 → 100 % under load with 0 failed requests, then serves alone', { timeout: 120_000 }, async () => {
    const load = traffic(send, rows, { model: 'iris', feedback: true });
    const t0 = performance.now();
    await upload('2', 'iris-mlp', { rollout: FAST_CANARY });
    const seen = new Set<string>();
    const done = await waitFor(
      'iris 2 Serving alone',
      async () => {
        const now = await mv('2');
        const r = now?.status?.rollout;
        if (r) seen.add(`${r.step}@${r.weight}`);
        if (r?.phase === 'RolledBack') throw new Error(`rolled back: ${r.failedCheck}`);
        return r?.phase === 'Succeeded' && now.status?.phase === 'Serving' && now;
      },
      90_000,
      250,
    );
    const ms = Math.round(performance.now() - t0);
    await load.stop();
    process.stderr.write(
      `# operator canary 20→50→100 % (2 s steps, 30 answers each): Serving alone ${ms} ms after the upload; ${load.sent} requests, ${load.failures.length} failed; by version ${JSON.stringify(Object.fromEntries(load.byVersion))}\n`,
    );
    assert.deepEqual(load.failures, [], 'no request failed');
    assert.ok(seen.has('1/3@20') && seen.has('2/3@50'), `steps seen: ${[...seen].join(', ')}`);
    assert.equal(done.status?.weight, 100);
    assert.ok((done.status?.rollout?.figures?.requests ?? 0) >= 30);
    await waitFor('iris 1 Standby', async () => (await mv('1'))?.status?.phase === 'Standby', 30_000);
    assert.ok((await events('2')).includes('Normal RolloutSucceeded'));
    assert.equal(await op.metric('analytics_operator_rollouts_total', { result: 'succeeded' }), 1);
    const table = await cp.kubectl(['get', 'mv', '-n', ns]);
    assert.match(table.stdout, /^iris-2\s+iris\s+2\s+Production\s+Serving\s+True\s+100\s+3\/3\s+/m);
  });

  for (const [version, bad, check] of [
    ['3', 'iris-fails-on-long-sepals', /error rate .* is above maxErrorRate 5 %/],
    ['4', 'iris-wrong-labels', /accuracy .* feedback is below minAccuracy 80 %/],
  ] as const) {
    test(`a canary of ${bad} is rolled back on its own within its first step; the stable version never fails`, { timeout: 120_000 }, async () => {
      const load = traffic(send, rows, { model: 'iris', feedback: true });
      const t0 = performance.now();
      await upload(version, bad, { rollout: { ...FAST_CANARY, interval: '1m' } });
      const first = await waitFor(
        'its first step taking traffic',
        async () => (await mv(version))?.status?.rollout?.weight === 20 && performance.now(),
        60_000,
        100,
      );
      const failed = await waitFor(
        `iris ${version} RolledBack`,
        async () => {
          const now = await mv(version);
          return now?.status?.phase === 'RolledBack' && now;
        },
        60_000,
        100,
      );
      const fromStep = Math.round(performance.now() - first);
      await waitFor('iris 2 serving alone again', async () => replicas.every((s) => s.app.ctx.registry.canaryOf('iris') === undefined), 30_000);
      await new Promise((r) => setTimeout(r, 300));
      await load.stop();
      process.stderr.write(
        `# operator canary of ${bad}: rolled back ${fromStep} ms after its first step took traffic (${Math.round(performance.now() - t0)} ms after the upload; interval 1 m): ${failed.status?.rollout?.failedCheck}\n`,
      );
      assert.ok(fromStep < 60_000, 'within one interval of the failing step');
      assert.match(failed.status!.rollout!.failedCheck!, check);
      assert.equal(failed.status?.weight, 0);
      assert.deepEqual(
        load.failures.filter((f) => f.version !== version),
        [],
        'only the canary failed; the stable version answered every request it got',
      );
      assert.equal((await mv('2'))?.status?.phase, 'Serving');
      assert.ok((await events(version)).includes('Warning RolloutFailed'));
      assert.match(op.output(), new RegExp(`"level":"warn".*"modelVersion":"analytics/iris-${version}".*"msg":"rollout rolled back"`));
      const answers = await Promise.all(rows.slice(0, 10).map((row) => send('/api/v1/predict/iris', { features: row.features }, {})));
      assert.ok(answers.every((a) => a.status === 200 && JSON.parse(a.body).model_version === '2'));
    });
  }

  test('a shadow of a version: only the stable one answers, the agreement is in the status', { timeout: 120_000 }, async () => {
    const load = traffic(send, rows, { model: 'iris' });
    await upload('5', 'iris-wrong-labels', { rollout: { strategy: 'Shadow', interval: '1h', analysis: { minRequests: 20 } } });
    const shadowing = await waitFor(
      'the shadow compared 100 answers',
      async () => {
        const now = await mv('5');
        return (now?.status?.rollout?.figures?.compared ?? 0) >= 100 && now;
      },
      60_000,
      250,
    );
    await load.stop();
    assert.deepEqual([...load.byVersion.keys()], ['2'], 'only the stable version answered');
    assert.equal(shadowing.status?.rollout?.phase, 'Shadowing');
    assert.equal(shadowing.status?.phase, 'Progressing');
    const agreement = shadowing.status!.rollout!.figures!.agreement!;
    process.stderr.write(
      `# operator shadow of iris-wrong-labels beside iris-mlp: agreement ${agreement} over ${shadowing.status?.rollout?.figures?.compared} answers\n`,
    );
    assert.ok(agreement < 0.2, `agreement ${agreement}`);
  });
});
