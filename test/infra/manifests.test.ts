import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { modelVersionCrd } from '../../contract/crd.ts';
import { LABELS, ROUTING_CONFIGMAP, ROUTING_KEY } from '../../contract/names.ts';
import { operatorConfigSchema } from '../../operator/config.ts';
import { operatorRules, serviceRules } from '../../contract/rbac.ts';
import { configSchema } from '../../service/config.ts';
import { figures } from '../../contract/figures.ts';
import { manifestFiles } from '../../infra/app.ts';
import { parseQuantity } from '../../infra/capacity.ts';
import { INGRESS_PATHS } from '../../infra/charts/service-chart.ts';
import { CREATE_ONLY_LABEL, INGRESS_CLASS, KIND_POD_CIDR, TOKEN_SECRET } from '../../infra/names.ts';
import { distDir, distFiles, distObjects, find, loadYaml, run, type Obj } from './helpers.ts';

// The committed manifests (infra/dist/): in step with the cdk8s code, in an order kubectl can
// apply, with the specification's figures, and hardened.

const objects = distObjects();
const deployment = (name: string) => find(objects, 'Deployment', name);
const container = (name: string) => deployment(name).spec.template.spec.containers[0] as Obj;
const envOf = (name: string) => Object.fromEntries((container(name).env as Obj[]).map((e) => [e.name, e.value ?? e.valueFrom]));
const GiB = 2 ** 30;

describe('infra/dist', () => {
  test('is what `make synth` writes now (run `make synth` and commit infra/dist/ when this fails)', { timeout: 30_000 }, () => {
    const fresh = manifestFiles();
    assert.deepEqual(distFiles(), fresh.map((f) => f.path).sort(), 'the same files');
    for (const f of fresh) {
      assert.equal(readFileSync(join(distDir, f.path), 'utf8'), f.yaml, `infra/dist/${f.path} differs from a fresh synth`);
    }
  });

  test('applies in order: the namespace and the CRD come first, monitoring in its own folder', () => {
    const files = distFiles();
    assert.deepEqual(
      files.filter((f) => !f.includes('/')),
      ['00-namespace.yaml', '10-redis.yaml', '20-service.yaml', '30-operator.yaml'],
    );
    assert.deepEqual(
      files.filter((f) => f.startsWith('monitoring/')),
      ['monitoring/40-monitoring.yaml'],
    );
    const first = objects.filter((o) => o.file === '00-namespace.yaml').map((o) => `${o.kind}/${o.metadata.name}`);
    assert.deepEqual(first, ['Namespace/analytics', 'CustomResourceDefinition/modelversions.serving.analytics.dev']);
    for (const o of objects.filter((x) => x.file !== '00-namespace.yaml' && !['PersistentVolume'].includes(x.kind))) {
      assert.equal(o.metadata.namespace, 'analytics', `${o.kind}/${o.metadata.name} is in the analytics namespace`);
    }
    assert.ok(
      objects.filter((o) => o.kind === 'PersistentVolume').every((o) => o.metadata.namespace === undefined),
      'PersistentVolumes are cluster-scoped',
    );
  });

  test('the CRD is the one contract/crd.ts generates', () => {
    assert.deepEqual(find(objects, 'CustomResourceDefinition', 'modelversions.serving.analytics.dev').spec, modelVersionCrd().spec);
  });

  test("the service requests and limits the specification's cores and memory (read back from the YAML)", () => {
    const { requests, limits } = container('analytics-api').resources;
    assert.equal(parseQuantity(requests.cpu), figures.resources.requests.cpu);
    assert.equal(parseQuantity(limits.cpu), figures.resources.limits.cpu);
    assert.equal(parseQuantity(requests.memory), figures.resources.requests.memoryGiB * GiB);
    assert.equal(parseQuantity(limits.memory), figures.resources.limits.memoryGiB * GiB);
    // As a person reads them: 2 / 4 cores, 4Gi / 8Gi.
    const text = readFileSync(join(distDir, '20-service.yaml'), 'utf8');
    assert.match(text, /limits:\n\s+cpu: "4"\n\s+memory: 8Gi\n\s+requests:\n\s+cpu: "2"\n\s+memory: 4Gi/);
  });

  test('every workload is hardened: non-root, read-only root, no capabilities, RuntimeDefault seccomp, IfNotPresent', () => {
    for (const name of ['analytics-api', 'analytics-operator', 'redis']) {
      const pod = deployment(name).spec.template.spec;
      assert.equal(pod.securityContext.runAsNonRoot, true, name);
      assert.ok(pod.securityContext.runAsUser > 0, name);
      assert.deepEqual(pod.securityContext.seccompProfile, { type: 'RuntimeDefault' }, name);
      const c = pod.containers[0];
      assert.equal(c.imagePullPolicy, 'IfNotPresent', name);
      assert.equal(c.securityContext.readOnlyRootFilesystem, true, name);
      assert.equal(c.securityContext.allowPrivilegeEscalation, false, name);
      assert.deepEqual(c.securityContext.capabilities, { drop: ['ALL'] }, name);
      assert.ok(c.resources.requests && c.resources.limits, `${name} has requests and limits`);
      const tmp = c.volumeMounts.find((m: Obj) => m.mountPath === '/tmp');
      assert.ok(
        pod.volumes.some((v: Obj) => v.name === tmp?.name && v.emptyDir),
        `${name}: /tmp is an emptyDir`,
      );
      assert.deepEqual(deployment(name).spec.selector.matchLabels, { [LABELS.name]: name });
      assert.equal(pod.containers.length, 1);
    }
  });

  test('the service: replicas, rollout, probes, draining, volumes, environment (no routing mount: the pods watch it)', () => {
    const d = deployment('analytics-api');
    assert.equal(d.spec.replicas, 2);
    assert.deepEqual(d.spec.strategy, { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } });
    const c = container('analytics-api');
    assert.equal(c.image, 'analytics-api:latest');
    assert.deepEqual(c.command, ['node', 'service/main.ts']);
    assert.equal(c.livenessProbe.httpGet.path, '/health');
    assert.equal(c.readinessProbe.httpGet.path, '/ready');
    assert.equal(c.startupProbe.httpGet.path, '/health');
    assert.deepEqual(c.ports, [
      { containerPort: 8080, name: 'http' },
      { containerPort: 8081, name: 'grpc' },
    ]);
    const mounts = Object.fromEntries(c.volumeMounts.map((m: Obj) => [m.mountPath, m.name]));
    const volumes = Object.fromEntries(d.spec.template.spec.volumes.map((v: Obj) => [v.name, v]));
    assert.equal(volumes[mounts['/app/models']].persistentVolumeClaim.claimName, 'analytics-models');
    assert.ok(
      !d.spec.template.spec.volumes.some((v: Obj) => v.configMap),
      'no ConfigMap volume: a routing change must not wait for the kubelet or roll the pods',
    );
    assert.deepEqual(c.lifecycle, { preStop: { exec: { command: ['sleep', '5'] } } });
    assert.ok(d.spec.template.spec.terminationGracePeriodSeconds > 5, 'the grace period outlasts the preStop sleep');
    const env = envOf('analytics-api');
    assert.deepEqual(
      { ...env, POD_NAMESPACE: undefined, API_TOKEN: undefined },
      {
        HOST: '0.0.0.0',
        PORT: '8080',
        GRPC_PORT: '8081',
        MODELS_DIR: '/app/models',
        CONTROL_PLANE: 'kubernetes',
        REDIS_URL: 'redis://redis:6379',
        CACHE_TTL_SECONDS: String(figures.cacheTtlSeconds),
        TRUSTED_PROXIES: KIND_POD_CIDR,
        POD_NAMESPACE: undefined,
        API_TOKEN: undefined,
      },
    );
    assert.deepEqual(env.POD_NAMESPACE, { fieldRef: { fieldPath: 'metadata.namespace' } });
    assert.deepEqual(env.API_TOKEN, { secretKeyRef: { name: TOKEN_SECRET, key: 'token' } });
    assert.equal(d.spec.template.spec.serviceAccountName, 'analytics-api');
    assert.equal(d.spec.template.spec.automountServiceAccountToken, true);
  });

  test('the token Secret is not committed; the routing ConfigMap starts empty and is create-only', () => {
    assert.equal(objects.filter((o) => o.kind === 'Secret').length, 0);
    const routing = find(objects, 'ConfigMap', ROUTING_CONFIGMAP);
    assert.deepEqual(JSON.parse(routing.data[ROUTING_KEY]), { models: {} });
    assert.equal(routing.metadata.labels[CREATE_ONLY_LABEL], 'true');
    assert.deepEqual(
      objects.filter((o) => o.metadata.labels?.[CREATE_ONLY_LABEL]).map((o) => o.metadata.name),
      [ROUTING_CONFIGMAP],
    );
  });

  test("the models and backups claims bind to Retain volumes on the kind node's host folders", () => {
    for (const name of ['analytics-models', 'analytics-backups']) {
      const pv = find(objects, 'PersistentVolume', name);
      const pvc = find(objects, 'PersistentVolumeClaim', name);
      assert.equal(pv.spec.persistentVolumeReclaimPolicy, 'Retain');
      assert.deepEqual(pv.spec.claimRef, { namespace: 'analytics', name });
      assert.equal(pvc.spec.volumeName, name);
      assert.equal(pvc.spec.storageClassName, pv.spec.storageClassName);
    }
  });

  test('Service, Ingress and PodDisruptionBudget of the service', () => {
    const svc = find(objects, 'Service', 'analytics-api');
    assert.equal(svc.spec.type, 'ClusterIP');
    assert.deepEqual(svc.spec.ports, [
      { name: 'http', port: 80, targetPort: 8080 },
      { name: 'grpc', port: 8081, targetPort: 8081 },
    ]);
    assert.deepEqual(svc.spec.selector, { [LABELS.name]: 'analytics-api' });
    const ing = find(objects, 'Ingress', 'analytics-api');
    assert.equal(ing.spec.ingressClassName, INGRESS_CLASS);
    assert.equal(INGRESS_CLASS, 'traefik', 'the class of the Traefik that make cluster installs');
    // No controller-specific annotations: Traefik needs none for 64 MiB uploads (no body limit).
    assert.equal(ing.metadata.annotations, undefined);
    const paths = ing.spec.rules[0].http.paths as Obj[];
    assert.deepEqual(paths.map((p) => p.path).sort(), [...INGRESS_PATHS].sort());
    assert.ok(INGRESS_PATHS.includes('/docs'), 'the API page (/docs, /docs/json) is reachable through the ingress');
    for (const p of paths) assert.deepEqual(p.backend.service, { name: 'analytics-api', port: { number: 80 } });
    const pdb = find(objects, 'PodDisruptionBudget', 'analytics-api');
    assert.equal(pdb.spec.minAvailable, 1);
    assert.deepEqual(pdb.spec.selector.matchLabels, { [LABELS.name]: 'analytics-api' });
  });

  test("RBAC: the Roles are operator/rbac.ts's rules, bound to their ServiceAccounts", () => {
    const strip = (rules: Obj[]) => rules.map((r) => ({ ...r }));
    assert.deepEqual(strip(find(objects, 'Role', 'analytics-operator').rules), strip(operatorRules));
    assert.deepEqual(strip(find(objects, 'Role', 'analytics-api').rules), strip(serviceRules));
    for (const name of ['analytics-operator', 'analytics-api']) {
      const rb = find(objects, 'RoleBinding', name);
      assert.deepEqual(rb.roleRef, { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name });
      assert.deepEqual(rb.subjects, [{ kind: 'ServiceAccount', name, namespace: 'analytics' }]);
      find(objects, 'ServiceAccount', name);
    }
  });

  test('the operator: image, command, downward-API namespace, metrics port and probes, leader-elected replicas', () => {
    const d = deployment('analytics-operator');
    assert.ok(d.spec.replicas >= 1 && d.spec.replicas <= 2);
    const c = container('analytics-operator');
    assert.equal(c.image, 'analytics-api:latest');
    assert.deepEqual(c.command, ['node', 'operator/main.ts']);
    const env = envOf('analytics-operator');
    assert.deepEqual(env.NAMESPACE, { fieldRef: { fieldPath: 'metadata.namespace' } });
    assert.equal(env.METRICS_PORT, '8081');
    assert.deepEqual([c.livenessProbe.httpGet.path, c.livenessProbe.httpGet.port], ['/healthz', 8081]);
    assert.deepEqual([c.readinessProbe.httpGet.path, c.readinessProbe.httpGet.port], ['/readyz', 8081]);
    assert.deepEqual(env.POD_NAME, { fieldRef: { fieldPath: 'metadata.name' } });
    assert.equal(d.spec.template.spec.serviceAccountName, 'analytics-operator');
  });

  test('the environments are ones the service and the operator accept', () => {
    // Values from the downward API and the Secret, as the kubelet would fill them in.
    const filled = { POD_NAMESPACE: 'analytics', NAMESPACE: 'analytics', POD_NAME: 'analytics-operator-7d9f-abcde', API_TOKEN: 'f'.repeat(64) };
    const literal = (name: string) =>
      Object.fromEntries(Object.entries(envOf(name)).map(([k, v]) => [k, typeof v === 'string' ? v : filled[k as keyof typeof filled]]));
    const service = configSchema.safeParse(literal('analytics-api'));
    assert.ok(service.success, JSON.stringify(service.error?.issues));
    assert.equal(service.data.CONTROL_PLANE, 'kubernetes');
    const operator = operatorConfigSchema.safeParse(literal('analytics-operator'));
    assert.ok(operator.success, JSON.stringify(operator.error?.issues));
    assert.equal(operator.data.METRICS_PORT, 8081);
    // The operator's defaults name what the manifests create.
    assert.equal(operator.data.MODELS_PVC, 'analytics-models');
    assert.equal(operator.data.BACKUPS_PVC, 'analytics-backups');
    assert.equal(operator.data.IMPORT_IMAGE, container('analytics-api').image);
    assert.equal(operator.data.SERVICE_NAME, 'analytics-api');
  });

  test("Redis: append-only file on its claim, and only the service's pods may connect", () => {
    const c = container('redis');
    assert.equal(c.image, 'redis:7-alpine');
    assert.deepEqual(c.command, ['redis-server', '--appendonly', 'yes', '--dir', '/data/redis']);
    const d = deployment('redis');
    const data = c.volumeMounts.find((m: Obj) => m.mountPath === '/data/redis');
    const vol = d.spec.template.spec.volumes.find((v: Obj) => v.name === data.name);
    find(objects, 'PersistentVolumeClaim', vol.persistentVolumeClaim.claimName);
    assert.deepEqual(find(objects, 'Service', 'redis').spec.ports, [{ name: 'redis', port: 6379, targetPort: 6379 }]);
    const np = find(objects, 'NetworkPolicy', 'redis');
    assert.deepEqual(np.spec.podSelector, { matchLabels: { [LABELS.name]: 'redis' } });
    assert.deepEqual(np.spec.policyTypes, ['Ingress']);
    assert.deepEqual(np.spec.ingress, [
      { from: [{ podSelector: { matchLabels: { [LABELS.name]: 'analytics-api' } } }], ports: [{ port: 6379, protocol: 'TCP' }] },
    ]);
    // The service's pods carry the label the policy admits.
    assert.equal(deployment('analytics-api').spec.template.metadata.labels[LABELS.name], 'analytics-api');
  });

  test("monitoring: ServiceMonitor on the service's http port, PrometheusRule, dashboard ConfigMap for Grafana's sidecar", () => {
    const sm = find(objects, 'ServiceMonitor', 'analytics-api');
    assert.equal(sm.apiVersion, 'monitoring.coreos.com/v1');
    assert.deepEqual(sm.spec.selector.matchLabels, { [LABELS.name]: 'analytics-api' });
    assert.deepEqual(
      sm.spec.endpoints.map((e: Obj) => [e.port, e.path]),
      [['http', '/metrics']],
    );
    const rule = find(objects, 'PrometheusRule', 'analytics-api');
    assert.ok(rule.spec.groups.length > 0);
    const dash = find(objects, 'ConfigMap', 'analytics-api-dashboard');
    assert.equal(dash.metadata.labels.grafana_dashboard, '1');
    const model = JSON.parse(Object.values(dash.data)[0] as string);
    const titles = (model.panels as Obj[]).map((p) => p.title);
    for (const t of [
      'Request rate',
      'Latency p50 / p99',
      '5xx share of responses',
      'Error responses',
      'Serving version per model',
      'Cache hit ratio',
      'Inference latency p99',
      'Predictions',
      'CPU of limit',
      'Memory of limit',
      'Model load time',
      'Operator leader',
      'ModelVersions by phase',
      'Reconciles',
      'Work queue depth',
    ]) {
      assert.ok(titles.includes(t), `panel ${t}`);
    }
  });
});

describe('make synth with settings: another namespace, replicas, resources, ingress class, trusted proxies', () => {
  const out = mkdtempSync(join(tmpdir(), 'synth-settings-'));
  after(() => rmSync(out, { recursive: true, force: true }));
  const NS = 'ml-serving';
  let objs: Obj[] = [];

  before(async () => {
    const settings = join(out, 'settings.json');
    writeFileSync(settings, JSON.stringify({ operator: { resources: { limits: { cpu: '750m' } } }, redis: { resources: { requests: { memory: '256Mi' } } } }));
    const r = await run(
      'make',
      [
        '--no-print-directory',
        'synth',
        `NAMESPACE=${NS}`,
        'SERVICE_REPLICAS=3',
        'OPERATOR_REPLICAS=1',
        'INGRESS_CLASS=traefik-internal',
        'TRUSTED_PROXIES=10.244.0.0/16,192.168.49.2,fd00::/8',
        `SETTINGS_FILE=${settings}`,
        `OUT=${join(out, 'dist')}`,
      ],
      {
        timeoutMs: 60_000,
      },
    );
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, new RegExp(`make deploy NAMESPACE=${NS} DIST=`));
    objs = readdirSync(join(out, 'dist'), { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile() && e.name.endsWith('.yaml'))
      .flatMap((e) => loadYaml(join(e.parentPath, e.name)));
  });

  test('leaves infra/dist/ and the chart alone', () => {
    for (const f of manifestFiles()) assert.equal(readFileSync(join(distDir, f.path), 'utf8'), f.yaml, `infra/dist/${f.path}`);
  });

  test('every namespaced object, RBAC subject, claimRef and ServiceMonitor is in that namespace', () => {
    assert.deepEqual(
      objs.filter((o) => o.kind === 'Namespace').map((o) => o.metadata.name),
      [NS],
    );
    for (const o of objs.filter((x) => !['Namespace', 'CustomResourceDefinition', 'PersistentVolume'].includes(x.kind))) {
      assert.equal(o.metadata.namespace, NS, `${o.kind}/${o.metadata.name}`);
    }
    for (const rb of objs.filter((o) => o.kind === 'RoleBinding')) assert.deepEqual(rb.subjects[0].namespace, NS, rb.metadata.name);
    for (const pv of objs.filter((o) => o.kind === 'PersistentVolume')) assert.equal(pv.spec.claimRef.namespace, NS);
    for (const sm of objs.filter((o) => o.kind === 'ServiceMonitor')) assert.deepEqual(sm.spec.namespaceSelector, { matchNames: [NS] });
    // Nothing says the default namespace any more (the dashboard's tag "analytics" is not one).
    const text = JSON.stringify(objs);
    assert.doesNotMatch(text, /namespace(\\?")?[=:] ?(\\?")?analytics\b/);
  });

  test('its volumes and node folders are its own, so it installs beside the default one', () => {
    const pvs = objs.filter((o) => o.kind === 'PersistentVolume');
    assert.deepEqual(pvs.map((pv) => pv.metadata.name).sort(), [`analytics-backups-${NS}`, `analytics-models-${NS}`]);
    assert.deepEqual(pvs.map((pv) => pv.spec.hostPath.path).sort(), [`/var/local/analytics-backups-${NS}`, `/var/local/analytics-models-${NS}`]);
    for (const pvc of objs.filter((o) => o.kind === 'PersistentVolumeClaim' && o.spec.volumeName)) {
      assert.equal(pvc.spec.volumeName, `${pvc.metadata.name}-${NS}`, 'the claim keeps its name (the operator mounts it) and binds its own volume');
    }
  });

  test('the alerts select that namespace and the dashboard defaults to it', () => {
    const rule = find(objs, 'PrometheusRule', 'analytics-api');
    for (const r of rule.spec.groups.flatMap((g: Obj) => g.rules)) assert.match(r.expr, new RegExp(`namespace="${NS}"`), r.alert);
    const cm = find(objs, 'ConfigMap', 'analytics-api-dashboard');
    const [key, json] = Object.entries(cm.data as Record<string, string>)[0]!;
    const model = JSON.parse(json);
    assert.equal(key, `analytics-api-${NS}.json`);
    assert.equal(model.uid, `analytics-api-${NS}`, 'its own dashboard uid: Grafana keeps both installs apart');
    assert.equal(model.templating.list.find((v: Obj) => v.name === 'namespace').current.value, NS);
  });

  test('replicas, resources, the ingress class and the trusted proxies are the settings', () => {
    const d = (name: string) => find(objs, 'Deployment', name);
    const env = d('analytics-api').spec.template.spec.containers[0].env as Array<{ name: string; value?: string }>;
    assert.equal(env.find((e) => e.name === 'TRUSTED_PROXIES')?.value, '10.244.0.0/16,192.168.49.2,fd00::/8');
    assert.equal(d('analytics-api').spec.replicas, 3);
    assert.equal(d('analytics-operator').spec.replicas, 1);
    assert.equal(find(objs, 'Ingress', 'analytics-api').spec.ingressClassName, 'traefik-internal');
    const res = (name: string) => d(name).spec.template.spec.containers[0].resources;
    assert.deepEqual(res('analytics-operator'), { requests: { cpu: '100m', memory: '128Mi' }, limits: { cpu: '750m', memory: '512Mi' } });
    assert.equal(res('redis').requests.memory, '256Mi');
    assert.equal(parseQuantity(res('analytics-api').limits.cpu), figures.resources.limits.cpu);
  });

  test('a bad setting stops make synth with its path named', async () => {
    const r = await run(
      'make',
      ['--no-print-directory', 'synth', 'NAMESPACE=ML_Serving', 'SERVICE_REPLICAS=0', 'TRUSTED_PROXIES=10.0.0.0/33', `OUT=${join(out, 'bad')}`],
      {
        timeoutMs: 60_000,
      },
    );
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /namespace: must be a lowercase DNS label/);
    assert.match(r.stderr, /service\.replicas: /);
    assert.match(r.stderr, /service\.trustedProxies: must be addresses or CIDR blocks/);
  });
});
