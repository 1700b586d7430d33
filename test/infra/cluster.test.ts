import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startControlPlane, waitFor, type ControlPlane } from '../k8s/control-plane.ts';
import { ROUTING_CONFIGMAP, ROUTING_KEY } from '../../contract/names.ts';
import { manifestFiles } from '../../infra/app.ts';
import { TOKEN_KEY, TOKEN_SECRET } from '../../infra/names.ts';
import { resolveSettings } from '../../infra/settings.ts';
import { distDir, distObjects, repoRoot, run, type Obj, KIND_STORAGE_STANDIN } from './helpers.ts';

// The manifests on a real API server (etcd + kube-apiserver, with kube-controller-manager,
// kube-scheduler and kwok's fake node so Deployments roll out): every object passes server-side
// dry-run, and the scripts behind `make deploy` and `make undeploy` work and can run again.

/** The prometheus-operator CRDs: ../shared/k8s-crds/ beside the repository. */
const crdDir = resolve(repoRoot, '..', 'shared', 'k8s-crds');
const objects = distObjects();

let cp: ControlPlane;
let home: string;

function scriptEnv(): NodeJS.ProcessEnv {
  return {
    ...process.env,
    PATH: `${cp.binDir}:${process.env.PATH}`,
    KUBECONFIG: cp.kubeconfigPath,
    KUBE_CONTEXT: 'test',
    HOME: home,
    ROLLOUT_TIMEOUT: '90s',
  };
}

async function kubectl(args: string[], input?: string) {
  const r = await cp.kubectl(args, { input, timeoutMs: 90_000 });
  assert.equal(r.code, 0, `kubectl ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

async function getJson(args: string[]): Promise<Obj> {
  return JSON.parse(await kubectl([...args, '-o', 'json']));
}

const script = (name: string) => run('bash', [join(repoRoot, 'infra/scripts', name)], { env: scriptEnv(), timeoutMs: 240_000 });

describe('infra/dist on a real API server', () => {
  before(
    async () => {
      home = mkdtempSync(join(tmpdir(), 'infra-cluster-home-'));
      cp = await startControlPlane({ controllers: true, log: !!process.env.K8S_TEST_LOG });
      assert.ok(existsSync(crdDir), `the prometheus-operator CRDs at ${crdDir}`);
      // The CRDs the objects need exist for real first: dry-run of a custom object needs its CRD.
      await kubectl(['apply', '--server-side', '-f', crdDir]);
      await kubectl(['apply', '--server-side', '-f', join(distDir, '00-namespace.yaml')]);
      await kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd', '--all']);
    },
    { timeout: 900_000 }, // a cold build of the binaries (when not built yet) runs here
  );

  after(async () => {
    await cp?.stop();
    if (home) rmSync(home, { recursive: true, force: true });
  });

  test('every object passes server-side dry-run (schemas, CRD validation, admission)', { timeout: 120_000 }, async () => {
    const out = await kubectl(['apply', '--server-side', '--dry-run=server', '-f', distDir, '-f', join(distDir, 'monitoring')]);
    const lines = out.trim().split('\n');
    assert.equal(lines.length, objects.length, out);
    for (const o of objects) {
      const kind = o.kind.toLowerCase();
      assert.ok(
        lines.some((l) => l.startsWith(`${kind}`) && l.includes(`/${o.metadata.name} `) && l.endsWith('(server dry run)')),
        `${o.kind}/${o.metadata.name} in:\n${out}`,
      );
    }
    // The same dry run rejects what is wrong, so passing it means something.
    const deployment = objects.find((o) => o.kind === 'Deployment' && o.metadata.name === 'analytics-api')!;
    const { file: _file, ...broken } = structuredClone(deployment);
    broken.spec.template.spec.containers[0].resources.limits.cpu = 'four';
    const r = await cp.kubectl(['apply', '--server-side', '--dry-run=server', '-f', '-'], { input: JSON.stringify(broken) });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /quantit/i);
  });

  test('make deploy: applies everything, creates the token Secret and the routing ConfigMap, waits for the rollouts', { timeout: 240_000 }, async () => {
    // kind's default StorageClass provisions Redis's claim; here a class and a volume stand in.
    await kubectl(['apply', '-f', '-'], KIND_STORAGE_STANDIN);

    const r = await script('deploy.sh');
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stderr, /creating Secret analytics-api-token/);
    assert.match(r.stderr, /applying infra\/dist\/monitoring\//, 'the monitoring CRDs exist here, so monitoring is applied');

    const existing = (await kubectl(['get', '-f', distDir, '-f', join(distDir, 'monitoring'), '-o', 'name'])).trim().split('\n');
    assert.equal(existing.length, objects.length, 'every object of infra/dist/ exists');
    const secret = await getJson(['-n', 'analytics', 'get', 'secret', TOKEN_SECRET]);
    const token = Buffer.from(secret.data[TOKEN_KEY], 'base64').toString();
    assert.match(token, /^[0-9a-f]{64}$/, 'a random 256-bit token, hex');
    const routing = await getJson(['-n', 'analytics', 'get', 'configmap', ROUTING_CONFIGMAP]);
    assert.deepEqual(JSON.parse(routing.data[ROUTING_KEY]), { models: {} });
    for (const name of ['redis', 'analytics-operator', 'analytics-api']) {
      const d = await getJson(['-n', 'analytics', 'get', 'deployment', name]);
      assert.equal(d.status.readyReplicas, d.spec.replicas, `${name} rolled out`);
    }
    for (const claim of ['analytics-models', 'analytics-backups', 'redis-data']) {
      await waitFor(`claim ${claim} bound`, async () => (await getJson(['-n', 'analytics', 'get', 'pvc', claim])).status.phase === 'Bound', 60_000);
    }
    // Each host-folder claim is bound to its own volume.
    for (const claim of ['analytics-models', 'analytics-backups']) {
      assert.equal((await getJson(['get', 'pv', claim])).spec.claimRef.name, claim);
    }
  });

  test("make deploy again: keeps the token and the operator's routing (no server-side apply conflict)", { timeout: 240_000 }, async () => {
    const tokenBefore = (await getJson(['-n', 'analytics', 'get', 'secret', TOKEN_SECRET])).data[TOKEN_KEY];
    // The operator takes the routing over with its own field manager.
    const routed = JSON.stringify({ models: { iris: '1' } });
    await kubectl(
      ['apply', '--server-side', '--force-conflicts', '--field-manager=analytics-operator', '-f', '-'],
      JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: ROUTING_CONFIGMAP, namespace: 'analytics' }, data: { [ROUTING_KEY]: routed } }),
    );
    const r = await script('deploy.sh');
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.doesNotMatch(r.stderr, /creating Secret/);
    assert.equal((await getJson(['-n', 'analytics', 'get', 'secret', TOKEN_SECRET])).data[TOKEN_KEY], tokenBefore);
    assert.equal((await getJson(['-n', 'analytics', 'get', 'configmap', ROUTING_CONFIGMAP])).data[ROUTING_KEY], routed);
  });

  test('a second install in another namespace beside it: make deploy and make undeploy with NAMESPACE and DIST', { timeout: 300_000 }, async () => {
    const other = 'ml-serving';
    const dist = join(home, 'dist-ml-serving');
    for (const f of manifestFiles(resolveSettings({ namespace: other }))) {
      mkdirSync(dirname(join(dist, f.path)), { recursive: true });
      writeFileSync(join(dist, f.path), f.yaml);
    }
    await kubectl(
      ['apply', '-f', '-'],
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'PersistentVolume',
        metadata: { name: 'test-redis-data-2' },
        spec: { capacity: { storage: '1Gi' }, accessModes: ['ReadWriteOnce'], storageClassName: 'standard', hostPath: { path: '/tmp/test-redis-data-2' } },
      }),
    );
    const env = { ...scriptEnv(), NAMESPACE: other, DIST: dist };
    const deployed = await run('bash', [join(repoRoot, 'infra/scripts/deploy.sh')], { env, timeoutMs: 240_000 });
    assert.equal(deployed.code, 0, deployed.stdout + deployed.stderr);
    for (const ns of ['analytics', other]) {
      const d = await getJson(['-n', ns, 'get', 'deployment', 'analytics-api']);
      assert.equal(d.status.readyReplicas, d.spec.replicas, `${ns} rolled out`);
      await getJson(['-n', ns, 'get', 'secret', TOKEN_SECRET]);
    }
    assert.equal((await getJson(['-n', other, 'get', 'pvc', 'analytics-models'])).spec.volumeName, `analytics-models-${other}`);
    assert.equal((await getJson(['get', 'pv', 'analytics-models'])).spec.claimRef.namespace, 'analytics', "the default install's volume is still its own");

    // A ModelVersion in the default namespace: the shared CRD must outlive the other install.
    await kubectl(
      ['apply', '-f', '-'],
      JSON.stringify({
        apiVersion: 'serving.analytics.dev/v1alpha1',
        kind: 'ModelVersion',
        metadata: { name: 'iris-9', namespace: 'analytics' },
        spec: { model: 'iris', version: '9', source: { url: 'https://models.invalid/iris-9.onnx' }, stage: 'Staging' },
      }),
    );
    const undeployed = await run('bash', [join(repoRoot, 'infra/scripts/undeploy.sh')], { env, timeoutMs: 240_000 });
    assert.equal(undeployed.code, 0, undeployed.stdout + undeployed.stderr);
    assert.match(undeployed.stderr, /keeping the ModelVersion CRD: 1 ModelVersion\(s\) in other namespaces/);
    await waitFor(`namespace ${other} gone`, async () => (await cp.kubectl(['get', 'namespace', other])).code !== 0, 120_000);
    assert.notEqual((await cp.kubectl(['get', 'pv', `analytics-models-${other}`])).code, 0);
    await getJson(['get', 'crd', 'modelversions.serving.analytics.dev']);
    await getJson(['-n', 'analytics', 'get', 'modelversion', 'iris-9']);
    await getJson(['-n', 'analytics', 'get', 'deployment', 'analytics-api']);
    await getJson(['get', 'pv', 'analytics-models']);
  });

  test('make undeploy: removes the namespace, the volumes and the CRD', { timeout: 240_000 }, async () => {
    const r = await script('undeploy.sh');
    assert.equal(r.code, 0, r.stdout + r.stderr);
    await waitFor('the analytics namespace to be gone', async () => (await cp.kubectl(['get', 'namespace', 'analytics'])).code !== 0, 120_000);
    for (const args of [
      ['persistentvolume', 'analytics-models'],
      ['persistentvolume', 'analytics-backups'],
      ['crd', 'modelversions.serving.analytics.dev'],
    ]) {
      const g = await cp.kubectl(['get', ...args]);
      assert.notEqual(g.code, 0, `${args.join('/')} deleted`);
      assert.match(g.stderr, /NotFound|not found/);
    }
  });
});
