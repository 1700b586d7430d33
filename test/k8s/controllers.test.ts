import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { AppsV1Api, BatchV1Api, CoreV1Api } from '@kubernetes/client-node';
import type { V1Deployment } from '@kubernetes/client-node';
import { startControlPlane, waitFor, type ControlPlane } from './control-plane.ts';

// The full control plane: kube-controller-manager, kube-scheduler and kwok's fake Node on top of
// etcd + kube-apiserver. Workloads go through the real controllers and scheduler; kwok plays the
// kubelet (pods become Running and Ready; pods of Jobs Succeeded).

const TEST = 120_000; // per test
const WAIT = 60_000; // per wait inside a test
const namespace = 'workloads';

function available(d: V1Deployment, replicas: number): boolean {
  const s = d.status;
  return (
    (s?.observedGeneration ?? 0) >= (d.metadata?.generation ?? 1) &&
    s?.replicas === replicas &&
    s?.updatedReplicas === replicas &&
    s?.readyReplicas === replicas &&
    s?.availableReplicas === replicas &&
    (s?.conditions?.some((c) => c.type === 'Available' && c.status === 'True') ?? false)
  );
}

describe('control plane with controllers, scheduler and a kwok node', () => {
  let cp: ControlPlane;
  let core: CoreV1Api;
  let apps: AppsV1Api;

  before(
    async () => {
      cp = await startControlPlane({ controllers: true, log: !!process.env.K8S_TEST_LOG });
      const kc = cp.kubeConfig();
      core = kc.makeApiClient(CoreV1Api);
      apps = kc.makeApiClient(AppsV1Api);
      process.stderr.write(`# control plane (with controllers) started in ${cp.startupMs} ms ${JSON.stringify(cp.timings)}\n`);
      await core.createNamespace({ body: { metadata: { name: namespace } } });
      // The ServiceAccount controller gives every namespace its "default" ServiceAccount.
      await waitFor(
        'ServiceAccount default in the new namespace',
        () => core.readNamespacedServiceAccount({ name: 'default', namespace }).catch(() => undefined),
        WAIT,
      );
    },
    { timeout: 900_000 }, // a cold build of the binaries (when not built yet) runs here
  );

  after(async () => {
    if (!cp) return;
    const dir = cp.dir;
    await cp.stop();
    assert.equal(existsSync(dir), false, 'stop() removes the temp folder');
  });

  test('the fake node is Ready with the configured capacity', { timeout: TEST }, async () => {
    const node = await core.readNode({ name: cp.nodeName! });
    assert.equal(node.status?.capacity?.cpu, '32');
    assert.equal(node.status?.allocatable?.memory, '256Gi');
    assert.equal(node.status?.allocatable?.pods, '110');
    assert.ok(node.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));
    const nodes = await cp.kubectl(['get', 'nodes', '-o', 'name']);
    assert.equal(nodes.stdout.trim(), `node/${cp.nodeName}`);
  });

  test('a Deployment applied through the API becomes Available with its replicas, and rolls out an update', { timeout: TEST }, async () => {
    const labels = { app: 'web' };
    await apps.createNamespacedDeployment({
      namespace,
      body: {
        metadata: { name: 'web', labels },
        spec: {
          replicas: 3,
          selector: { matchLabels: labels },
          strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } },
          template: {
            metadata: { labels },
            spec: {
              containers: [
                {
                  name: 'web',
                  image: 'example.invalid/web:1', // never pulled: kwok plays the kubelet
                  resources: { requests: { cpu: '500m', memory: '256Mi' }, limits: { cpu: '1', memory: '512Mi' } },
                  readinessProbe: { httpGet: { path: '/ready', port: 8080 } },
                },
              ],
            },
          },
        },
      },
    });
    const d = await waitFor(
      'Deployment web Available with 3 replicas',
      async () => {
        const got = await apps.readNamespacedDeployment({ name: 'web', namespace });
        return available(got, 3) ? got : undefined;
      },
      WAIT,
    );
    assert.equal(d.status?.readyReplicas, 3);

    const pods = await core.listNamespacedPod({ namespace, labelSelector: 'app=web' });
    assert.equal(pods.items.length, 3);
    for (const p of pods.items) {
      assert.equal(p.spec?.nodeName, cp.nodeName, 'scheduled by kube-scheduler onto the kwok node');
      assert.equal(p.status?.phase, 'Running');
      assert.ok(p.status?.podIP, 'kwok assigns a pod IP');
      // ServiceAccount admission mounted the token (needs the controllers' ServiceAccount).
      assert.ok(p.spec?.volumes?.some((v) => v.name.startsWith('kube-api-access-')));
    }

    // A rolling update through kubectl: new pods come up, old ones are deleted (kwok's pod-delete stage).
    const set = await cp.kubectl(['set', 'image', '-n', namespace, 'deployment/web', 'web=example.invalid/web:2']);
    assert.equal(set.code, 0, set.stderr);
    const rollout = await cp.kubectl(['rollout', 'status', '-n', namespace, 'deployment/web', '--timeout=60s'], { timeoutMs: WAIT + 5_000 });
    assert.equal(rollout.code, 0, rollout.stderr);
    assert.match(rollout.stdout, /successfully rolled out/);
    await waitFor(
      'only the new pods to remain',
      async () => {
        const now = await core.listNamespacedPod({ namespace, labelSelector: 'app=web' });
        return now.items.length === 3 && now.items.every((p) => p.spec?.containers[0]?.image === 'example.invalid/web:2' && p.status?.phase === 'Running');
      },
      WAIT,
    );
  });

  test('a Job runs to Succeeded', { timeout: TEST }, async () => {
    const batch = cp.kubeConfig().makeApiClient(BatchV1Api);
    await batch.createNamespacedJob({
      namespace,
      body: {
        metadata: { name: 'backup' },
        spec: {
          completions: 2,
          parallelism: 2,
          backoffLimit: 0,
          template: {
            spec: {
              restartPolicy: 'Never',
              containers: [{ name: 'backup', image: 'example.invalid/backup:1', command: ['true'] }],
            },
          },
        },
      },
    });
    const job = await waitFor(
      'Job backup Complete',
      async () => {
        const j = await batch.readNamespacedJob({ name: 'backup', namespace });
        return j.status?.conditions?.some((c) => c.type === 'Complete' && c.status === 'True') ? j : undefined;
      },
      WAIT,
    );
    assert.equal(job.status?.succeeded, 2);
    assert.ok(!job.status?.failed);
    assert.ok(job.status?.completionTime);
    const pods = await core.listNamespacedPod({ namespace, labelSelector: 'batch.kubernetes.io/job-name=backup' });
    assert.equal(pods.items.length, 2);
    assert.ok(pods.items.every((p) => p.status?.phase === 'Succeeded'));
    const wait = await cp.kubectl(['wait', '-n', namespace, '--for=condition=Complete', 'job/backup', '--timeout=10s']);
    assert.equal(wait.code, 0, wait.stderr);
  });
});
