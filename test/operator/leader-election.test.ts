import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { CoordinationV1Api } from '@kubernetes/client-node';
import type { KubeConfig, V1Lease } from '@kubernetes/client-node';
import { LEADER_LEASE } from '../../contract/names.ts';
import { waitFor, type ControlPlane } from '../k8s/control-plane.ts';
import { createServiceDeployment, kubectlApply, modelVersion, ns, startCluster, startOperator, waitForPhase, type OperatorProcess } from './helpers.ts';

// Two operator processes (`node operator/main.ts`) behind one Lease: one reconciles, the other
// stands by with a warm cache. SIGKILL the leader (no chance to release the Lease): the standby
// takes over once the lease duration has passed on its own clock, and carries on.

const LEASE_SECONDS = 6;
const RETRY_SECONDS = 1;
const leaseEnv = { LEASE_DURATION_SECONDS: String(LEASE_SECONDS), RENEW_DEADLINE_SECONDS: '4', RETRY_PERIOD_SECONDS: String(RETRY_SECONDS) };

describe('leader election (two operators, one Lease)', () => {
  let cp: ControlPlane;
  let kc: KubeConfig;
  const ops: OperatorProcess[] = [];

  const lease = (): Promise<V1Lease> => kc.makeApiClient(CoordinationV1Api).readNamespacedLease({ name: LEADER_LEASE, namespace: ns });
  const holder = async () => (await lease()).spec?.holderIdentity ?? '';
  const reconciles = (op: OperatorProcess) => op.metric('controller_runtime_reconcile_total');

  before(
    async () => {
      cp = await startCluster();
      kc = cp.kubeConfig();
      await createServiceDeployment(kc, 1);
      ops.push(await startOperator(cp, 'op-a', leaseEnv));
      await waitFor('op-a leads', async () => (await holder()) === 'op-a', 20_000);
      ops.push(await startOperator(cp, 'op-b', leaseEnv));
    },
    { timeout: 900_000 },
  );

  after(async () => {
    for (const op of ops) await op.stop();
    await cp?.stop();
  });

  test('only the leader reconciles; the standby is ready, with its cache warm, and idle', { timeout: 120_000 }, async () => {
    const [a, b] = ops as [OperatorProcess, OperatorProcess];
    await kubectlApply(
      cp,
      modelVersion('iris-1', { model: 'iris', version: '1', source: { url: 'https://models.example.com/iris/1.onnx' }, stage: 'Production' }),
    );
    // Routed: kwok runs no service pod that could report it loaded, so it stays Progressing.
    await waitForPhase(kc, 'iris-1', 'Progressing', 90_000);
    assert.equal(await holder(), 'op-a');
    assert.equal(await a.metric('leader_election_master_status'), 1);
    assert.equal(await b.metric('leader_election_master_status'), 0);
    assert.ok((await reconciles(a)) > 0);
    assert.equal(await reconciles(b), 0, 'the standby reconciled nothing');
    assert.equal((await b.get('/readyz')).status, 200, 'the standby is ready (its informers synced)');
    assert.ok((await b.metric('analytics_operator_informer_lists_total', { resource: 'modelversions' })) >= 1);
  });

  test('SIGKILL the leader: the standby takes over within the lease time and carries on', { timeout: 120_000 }, async () => {
    const [a, b] = ops as [OperatorProcess, OperatorProcess];
    const transitions = (await lease()).spec?.leaseTransitions ?? 0;
    const killed = performance.now();
    a.child.kill('SIGKILL');
    await a.exited;
    await waitFor('op-b holds the lease', async () => (await holder()) === 'op-b', (LEASE_SECONDS + 10) * 1000);
    const takeoverMs = Math.round(performance.now() - killed);
    process.stderr.write(`# leader SIGKILLed → standby took over in ${takeoverMs} ms (lease ${LEASE_SECONDS} s, retry ${RETRY_SECONDS} s)\n`);
    // The standby waits a lease duration from when it last saw the lease change (up to one retry
    // period before the kill), then takes it at its next try (one retry period, +20 % jitter).
    assert.ok(takeoverMs <= (LEASE_SECONDS + 2 * RETRY_SECONDS) * 1000 + 1000, `took over in ${takeoverMs} ms`);
    assert.equal((await lease()).spec?.leaseTransitions, transitions + 1);
    assert.equal(await b.metric('leader_election_master_status'), 1);
    // The new leader works: it serves a new version.
    await kubectlApply(
      cp,
      modelVersion('iris-2', { model: 'iris', version: '2', source: { url: 'https://models.example.com/iris/2.onnx' }, stage: 'Production' }),
    );
    await waitForPhase(kc, 'iris-2', 'Progressing', 90_000);
    await waitForPhase(kc, 'iris-1', 'Standby', 30_000);
    assert.ok((await reconciles(b)) > 0);
  });

  test('a leader stopped cleanly releases the lease: the next one takes it at once', { timeout: 60_000 }, async () => {
    const [, b] = ops as [OperatorProcess, OperatorProcess];
    ops.push(await startOperator(cp, 'op-c', leaseEnv));
    const stopped = performance.now();
    assert.equal(await b.stop('SIGTERM'), 0);
    await waitFor('op-c holds the lease', async () => (await holder()) === 'op-c', 10_000);
    const ms = Math.round(performance.now() - stopped);
    process.stderr.write(`# leader stopped (SIGTERM, lease released) → next took over in ${ms} ms\n`);
    assert.ok(ms < (LEASE_SECONDS * 1000) / 2, `took over in ${ms} ms, well within the lease duration`);
  });
});
