import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Yaml } from 'cdk8s';
import { ROUTING_CONFIGMAP, ROUTING_KEY } from '../../contract/names.ts';
import { manifestObjects } from '../../infra/app.ts';
import { CHART_DIR, helmChartFiles } from '../../infra/helm-chart.ts';
import { resolveSettings } from '../../infra/settings.ts';
import { TOKEN_KEY, TOKEN_SECRET } from '../../infra/names.ts';
import { startControlPlane, waitFor, type ControlPlane } from '../k8s/control-plane.ts';
import { distObjects, repoRoot, run, type Obj, KIND_STORAGE_STANDIN } from './helpers.ts';

// The Helm chart that `make synth` generates from the cdk8s code (infra/helm/analytics-api/):
// fresh, `helm lint --strict` clean, rendering exactly infra/dist/ for the default namespace and
// values, refusing bad values by its schema; then installed by a real Helm (built from its Go
// module by test/infra/build-helm.sh) into a real control plane in another namespace under
// another release name, with other settings, waited for until everything is ready, upgraded
// without undoing the operator's routing, and uninstalled.

const chartDir = join(repoRoot, CHART_DIR);
const NS = 'ml-serving';
const RELEASE = 'serving-a';
const crdDir = resolve(repoRoot, '..', 'shared', 'k8s-crds');
const MONITORING_APIS = ['monitoring.coreos.com/v1/ServiceMonitor', 'monitoring.coreos.com/v1/PrometheusRule'];

let helmBin = '';
let home = '';

async function buildHelm(): Promise<string> {
  const r = await run('bash', [join(repoRoot, 'test/infra/build-helm.sh')], { timeoutMs: 900_000 });
  assert.equal(r.code, 0, `test/infra/build-helm.sh: ${r.stderr}`);
  return r.stdout.trim().split('\n').pop()!;
}

function helm(args: string[], env: NodeJS.ProcessEnv = {}) {
  return run(helmBin, args, {
    timeoutMs: 300_000,
    env: { ...process.env, HELM_CACHE_HOME: join(home, 'cache'), HELM_CONFIG_HOME: join(home, 'config'), HELM_DATA_HOME: join(home, 'data'), ...env },
  });
}

/** Objects without the chart's own marks (release labels, manager, resource policy), to compare with infra/dist/'s. */
function withoutHelmMarks(objects: Obj[]): Obj[] {
  for (const o of objects) {
    for (const meta of [o.metadata, o.spec?.template?.metadata]) {
      if (!meta?.labels) continue;
      delete meta.labels['app.kubernetes.io/instance'];
      delete meta.labels['helm.sh/chart'];
      delete meta.labels['app.kubernetes.io/managed-by'];
    }
    if (o.metadata?.annotations) {
      delete o.metadata.annotations['helm.sh/resource-policy'];
      if (Object.keys(o.metadata.annotations).length === 0) delete o.metadata.annotations;
    }
  }
  return objects;
}

const key = (o: Obj) => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;
const byKey = (objects: Obj[]) => Object.fromEntries(objects.map((o) => [key(o), o]));

before(
  async () => {
    helmBin = await buildHelm();
    home = mkdtempSync(join(tmpdir(), 'infra-helm-'));
  },
  { timeout: 900_000 }, // a cold build of Helm (a few minutes) runs here
);
after(() => {
  if (home) rmSync(home, { recursive: true, force: true });
});

describe('the generated Helm chart', () => {
  test('is what `make synth` writes now (run `make synth` and commit infra/helm/ when this fails)', () => {
    const fresh = helmChartFiles();
    const onDisk = readdirSync(chartDir, { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile())
      .map((e) => relative(chartDir, join(e.parentPath, e.name)))
      .sort();
    assert.deepEqual(onDisk, fresh.map((f) => f.path).sort());
    for (const f of fresh) assert.equal(readFileSync(join(chartDir, f.path), 'utf8'), f.content, `${CHART_DIR}/${f.path}`);
  });

  test('helm lint --strict finds nothing', { timeout: 60_000 }, async () => {
    const r = await helm(['lint', '--strict', chartDir, '--namespace', NS]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/);
  });

  async function rendered(namespace: string, sets: string[]): Promise<Record<string, Obj>> {
    const r = await helm([
      'template',
      'analytics',
      chartDir,
      '--namespace',
      namespace,
      ...sets.flatMap((x) => ['--set', x]),
      ...MONITORING_APIS.flatMap((a) => ['--api-versions', a]),
    ]);
    assert.equal(r.code, 0, r.stderr);
    writeFileSync(join(home, 'rendered.yaml'), r.stdout);
    const objects = byKey(withoutHelmMarks((Yaml.load(join(home, 'rendered.yaml')) as Obj[]).filter(Boolean)));
    const secret = objects[`Secret/${namespace}/${TOKEN_SECRET}`];
    assert.ok(secret, 'the token Secret');
    assert.match(Buffer.from(secret.data[TOKEN_KEY], 'base64').toString(), /^[A-Za-z0-9]{64}$/);
    delete objects[`Secret/${namespace}/${TOKEN_SECRET}`];
    return objects;
  }
  const synthesized = (objects: Obj[]) => byKey(withoutHelmMarks(objects.filter((o) => o.kind !== 'Namespace' && o.kind !== 'CustomResourceDefinition')));

  test('in the default namespace with the default values it renders exactly infra/dist/ (less the Namespace, the CRD in crds/, plus the token Secret)', {
    timeout: 60_000,
  }, async () => {
    const helmObjects = await rendered('analytics', []);
    const dist = synthesized(distObjects().map(({ file: _f, ...o }) => o));
    assert.deepEqual(Object.keys(helmObjects).sort(), Object.keys(dist).sort());
    for (const k of Object.keys(dist)) assert.deepEqual(helmObjects[k], dist[k], k);
    const { file: _file, ...distCrd } = distObjects().find((o) => o.kind === 'CustomResourceDefinition')!;
    assert.deepEqual(Yaml.load(join(chartDir, 'crds/modelversions.serving.analytics.dev.yaml'))[0], distCrd, 'crds/ holds the same CRD');
  });

  test('with another namespace and values it renders what `make synth` writes for the same settings', { timeout: 60_000 }, async () => {
    const settings = resolveSettings({
      namespace: NS,
      service: {
        replicas: 3,
        ingressClassName: 'traefik-internal',
        trustedProxies: '10.0.0.0/8,192.168.1.5',
        resources: { limits: { cpu: '3500m', memory: '6Gi' } },
      },
      operator: { replicas: 1 },
      redis: { resources: { requests: { cpu: 0.25 } } },
      monitoring: { runbookBaseUrl: 'https://runbooks.internal/analytics' },
    });
    const helmObjects = await rendered(NS, [
      'service.replicas=3',
      'service.ingressClassName=traefik-internal',
      'service.trustedProxies=10.0.0.0/8\\,192.168.1.5',
      'service.resources.limits.cpu=3500m',
      'service.resources.limits.memory=6Gi',
      'operator.replicas=1',
      'redis.resources.requests.cpu=0.25',
      'monitoring.runbookBaseUrl=https://runbooks.internal/analytics',
    ]);
    const synth = synthesized(manifestObjects(settings).flatMap((f) => f.objects as Obj[]));
    assert.deepEqual(Object.keys(helmObjects).sort(), Object.keys(synth).sort());
    for (const k of Object.keys(synth)) assert.deepEqual(helmObjects[k], synth[k], k);
  });

  test('without the Prometheus operator CRDs, or with monitoring.enabled=false, the monitoring objects stay out', { timeout: 60_000 }, async () => {
    const kinds = async (args: string[]) => {
      const r = await helm(['template', RELEASE, chartDir, '--namespace', NS, ...args]);
      assert.equal(r.code, 0, r.stderr);
      return [...r.stdout.matchAll(/^kind: (\w+)$/gm)].map((m) => m[1]);
    };
    const none = await kinds([]);
    assert.ok(!none.includes('ServiceMonitor') && !none.includes('PrometheusRule'));
    assert.ok(none.includes('ConfigMap'));
    const off = await kinds(['--set', 'monitoring.enabled=false', ...MONITORING_APIS.flatMap((a) => ['--api-versions', a])]);
    assert.ok(!off.includes('ServiceMonitor'));
    const on = await kinds(MONITORING_APIS.flatMap((a) => ['--api-versions', a]));
    assert.equal(on.filter((k) => k === 'ServiceMonitor').length, 2);
  });

  test('values.schema.json refuses what the settings refuse, naming the value', { timeout: 60_000 }, async () => {
    for (const [set, named] of [
      ['service.replicas=0', /replicas/],
      ['service.resources.limits.memory=lots', /memory/],
      ['service.replica=3', /replica/],
      ['service.trustedProxies=everyone', /trustedProxies/],
    ] as const) {
      const r = await helm(['template', RELEASE, chartDir, '--namespace', NS, '--set', set]);
      assert.notEqual(r.code, 0, set);
      assert.match(r.stderr, /values don't meet the specifications of the schema/, set);
      assert.match(r.stderr, named, set);
    }
  });
});

describe(`helm install into a real control plane: namespace ${NS}, release ${RELEASE}`, () => {
  let cp: ControlPlane;
  const kubectl = async (args: string[], input?: string) => {
    const r = await cp.kubectl(args, { input, timeoutMs: 120_000 });
    assert.equal(r.code, 0, `kubectl ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  const get = async (args: string[]): Promise<Obj> => JSON.parse(await kubectl([...args, '-o', 'json']));
  const kube = () => ({ KUBECONFIG: cp.kubeconfigPath });
  const values = () => join(home, 'values.yaml');

  before(
    async () => {
      cp = await startControlPlane({ controllers: true, log: !!process.env.K8S_TEST_LOG });
      assert.ok(existsSync(crdDir), `the prometheus-operator CRDs at ${crdDir}`);
      await kubectl(['apply', '--server-side', '-f', crdDir]);
      await kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd', '--all']);
      // What kind's default StorageClass does for Redis's claim: a class and a volume.
      await kubectl(['apply', '-f', '-'], KIND_STORAGE_STANDIN);
      writeFileSync(
        values(),
        Yaml.stringify({
          service: { replicas: 3, ingressClassName: 'traefik-internal', resources: { requests: { cpu: '500m', memory: '1Gi' } } },
          operator: { replicas: 1 },
          monitoring: { runbookBaseUrl: 'https://runbooks.internal/analytics' },
        }),
      );
    },
    { timeout: 300_000 },
  );
  after(async () => {
    await cp?.stop();
  });

  test('installs with --wait: every Deployment ready, every claim bound, all in the namespace with the given settings', { timeout: 300_000 }, async () => {
    const r = await helm(['install', RELEASE, chartDir, '--namespace', NS, '--create-namespace', '-f', values(), '--wait', '--timeout', '240s'], kube());
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /STATUS: deployed/);

    const deployments = (await get(['-n', NS, 'get', 'deployments'])).items as Obj[];
    const replicas = Object.fromEntries(deployments.map((d) => [d.metadata.name, [d.spec.replicas, d.status.readyReplicas]]));
    assert.deepEqual(replicas, { 'analytics-api': [3, 3], 'analytics-operator': [1, 1], redis: [1, 1] });
    const api = deployments.find((d) => d.metadata.name === 'analytics-api')!;
    assert.deepEqual(api.spec.template.spec.containers[0].resources, { requests: { cpu: '500m', memory: '1Gi' }, limits: { cpu: '4', memory: '8Gi' } });
    assert.equal(api.metadata.labels['app.kubernetes.io/instance'], RELEASE);
    assert.equal((await get(['-n', NS, 'get', 'ingress', 'analytics-api'])).spec.ingressClassName, 'traefik-internal');

    for (const name of ['analytics-models', 'analytics-backups']) {
      const pvc = await get(['-n', NS, 'get', 'pvc', name]);
      assert.equal(pvc.status.phase, 'Bound');
      assert.equal(pvc.spec.volumeName, `${name}-${NS}`);
      const pv = await get(['get', 'pv', `${name}-${NS}`]);
      assert.deepEqual(pv.spec.claimRef.namespace, NS);
      assert.equal(pv.spec.hostPath.path, `/var/local/${name}-${NS}`);
    }
    for (const name of ['analytics-api', 'analytics-operator']) {
      assert.deepEqual((await get(['-n', NS, 'get', 'rolebinding', name])).subjects, [{ kind: 'ServiceAccount', name, namespace: NS }]);
    }
    const monitors = (await get(['-n', NS, 'get', 'servicemonitors'])).items as Obj[];
    assert.equal(monitors.length, 2);
    for (const sm of monitors) assert.deepEqual(sm.spec.namespaceSelector, { matchNames: [NS] });
    const rules = (await get(['-n', NS, 'get', 'prometheusrule', 'analytics-api'])).spec.groups.flatMap((g: Obj) => g.rules) as Obj[];
    for (const rule of rules) {
      assert.match(rule.expr, new RegExp(`namespace="${NS}"`), rule.alert);
      assert.equal(rule.annotations.runbook_url, `https://runbooks.internal/analytics#${rule.alert.toLowerCase()}`);
    }
    assert.match(rules[0]!.annotations.description, /\{\{ \$value \| humanizePercentage \}\}/, "Prometheus's own template text survives Helm's");
    const dashboards = (await get(['-n', NS, 'get', 'configmap', '-l', 'grafana_dashboard=1'])).items as Obj[];
    const model = JSON.parse(dashboards[0]!.data[`analytics-api-${NS}.json`]);
    assert.equal(model.templating.list.find((v: Obj) => v.name === 'namespace').current.value, NS);
    assert.equal(model.panels.find((p: Obj) => p.title === 'Request rate').targets[0].legendFormat, '{{route}}');

    const token = Buffer.from((await get(['-n', NS, 'get', 'secret', TOKEN_SECRET])).data[TOKEN_KEY], 'base64').toString();
    assert.match(token, /^[A-Za-z0-9]{64}$/);
    assert.deepEqual(JSON.parse((await get(['-n', NS, 'get', 'configmap', ROUTING_CONFIGMAP])).data[ROUTING_KEY]), { models: {} });
    // Nothing landed in the default namespace.
    assert.notEqual((await cp.kubectl(['get', 'namespace', 'analytics'])).code, 0);
  });

  test("helm upgrade keeps the operator's routing and the token, and applies new values", { timeout: 300_000 }, async () => {
    const tokenBefore = (await get(['-n', NS, 'get', 'secret', TOKEN_SECRET])).data[TOKEN_KEY];
    const routed = JSON.stringify({ models: { iris: '1' } });
    await kubectl(
      ['apply', '--server-side', '--force-conflicts', '--field-manager=analytics-operator', '-f', '-'],
      JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: ROUTING_CONFIGMAP, namespace: NS }, data: { [ROUTING_KEY]: routed } }),
    );
    const r = await helm(
      ['upgrade', RELEASE, chartDir, '--namespace', NS, '-f', values(), '--set', 'service.replicas=2', '--wait', '--timeout', '240s'],
      kube(),
    );
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal((await get(['-n', NS, 'get', 'configmap', ROUTING_CONFIGMAP])).data[ROUTING_KEY], routed);
    assert.equal((await get(['-n', NS, 'get', 'secret', TOKEN_SECRET])).data[TOKEN_KEY], tokenBefore);
    await waitFor('2 service replicas', async () => (await get(['-n', NS, 'get', 'deployment', 'analytics-api'])).status.readyReplicas === 2, 120_000);
  });

  test('helm uninstall removes the release and keeps the routing and the token (resource-policy keep)', { timeout: 300_000 }, async () => {
    const r = await helm(['uninstall', RELEASE, '--namespace', NS, '--wait', '--timeout', '240s'], kube());
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(((await get(['-n', NS, 'get', 'deployments'])).items as Obj[]).length, 0);
    await kubectl(['-n', NS, 'get', 'configmap', ROUTING_CONFIGMAP]);
    await kubectl(['-n', NS, 'get', 'secret', TOKEN_SECRET]);
  });
});
