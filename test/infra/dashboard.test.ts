import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { modelVersionCrd } from '../../contract/crd.ts';
import { manifestObjects } from '../../infra/app.ts';
import { resolveSettings } from '../../infra/settings.ts';
import { freePort, recentOutput, startProcess, stopProcess, waitFor } from '../helpers/processes.ts';
import { startService, uploadSample, type TestService } from '../helpers/service.ts';
import { startControlPlane, type ControlPlane } from '../k8s/control-plane.ts';
import { repoRoot, type Obj } from './helpers.ts';

// The Grafana dashboard as a person would see it for an install in another namespace. The
// manifests are synthesized for `ml-serving`; a real service (models uploaded, one promoted,
// predictions, errors) and two real operator replicas (on a real API server, watching a
// ModelVersion in ml-serving) are scraped by a real Prometheus under the labels the
// ServiceMonitors give (job = the Service's name, namespace, pod). Then every panel's query, with
// the dashboard's variables at their defaults as Grafana sets them, returns data over the test's
// time range, and the variables' own queries offer that namespace, job and pods.

const NS = 'ml-serving';
const SCRAPE_SECONDS = 1;
// Grafana's $__rate_interval: max($__interval + scrape interval, 4 × scrape interval), with a 1 s step.
const RATE_INTERVAL = `${4 * SCRAPE_SECONDS}s`;
const SERVICE_POD = 'analytics-api-7c9d8f-x2k4q';
const OPERATOR_PODS = ['analytics-operator-5b6f7-aaaaa', 'analytics-operator-5b6f7-bbbbb'];
const IRIS = { 'sepal length (cm)': 5.9, 'sepal width (cm)': 3.0, 'petal length (cm)': 5.1, 'petal width (cm)': 1.8 };

const objects = manifestObjects(resolveSettings({ namespace: NS })).flatMap((f) => f.objects as Obj[]);
const dashboardMap = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.labels?.grafana_dashboard === '1')!;
const dashboard = JSON.parse(Object.values(dashboardMap.data as Record<string, string>)[0]!) as Obj;
const variables = dashboard.templating.list as Obj[];
const panels = (dashboard.panels as Obj[]).filter((p) => p.type !== 'row');

/** The job a ServiceMonitor's targets get: the name of the Service it selects. */
function jobOf(monitorName: string): string {
  const sm = objects.find((o) => o.kind === 'ServiceMonitor' && o.metadata.name === monitorName)!;
  const wanted = Object.entries(sm.spec.selector.matchLabels as Record<string, string>);
  const services = objects.filter((o) => o.kind === 'Service' && wanted.every(([k, v]) => o.metadata.labels?.[k] === v));
  assert.equal(services.length, 1, `one Service for ServiceMonitor ${monitorName}`);
  assert.deepEqual(sm.spec.namespaceSelector, { matchNames: [NS] });
  return services[0]!.metadata.name as string;
}

/** A variable's value as Grafana starts the dashboard: its default, or the all-value for "All". */
function variableValue(name: string): string {
  const v = variables.find((x) => x.name === name)!;
  const value = v.current.value;
  return Array.isArray(value) && value[0] === '$__all' ? v.allValue : value;
}

function substitute(expr: string): string {
  let out = expr.replaceAll('$__rate_interval', RATE_INTERVAL);
  // Longest names first: $operator_job before $job.
  for (const name of ['operator_job', 'namespace', 'job', 'pod']) out = out.replaceAll(`$${name}`, variableValue(name));
  return out;
}

let cp: ControlPlane;
let svc: TestService;
let prometheus: ChildProcess;
const operators: ChildProcess[] = [];
let promPort = 0;
let dir = '';
let start = 0;

interface Series {
  metric: Record<string, string>;
  values?: [number, string][];
  value?: [number, string];
}

async function prom(path: string, params: Record<string, string | number>): Promise<Series[]> {
  const url = new URL(`http://127.0.0.1:${promPort}${path}`);
  for (const [k, v] of Object.entries(params)) url.searchParams.set(k, String(v));
  const res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
  const body = (await res.json()) as { status: string; error?: string; data: { result: Series[] } | string[] };
  assert.equal(body.status, 'success', `${url}: ${body.error}`);
  return (body.data as { result: Series[] }).result ?? (body.data as unknown as Series[]);
}

const range = (expr: string) => prom('/api/v1/query_range', { query: expr, start: start / 1000, end: Date.now() / 1000, step: SCRAPE_SECONDS });
const instant = (expr: string) => prom('/api/v1/query', { query: expr });
const finite = (s: Series) => (s.values ?? (s.value ? [s.value] : [])).some(([, v]) => Number.isFinite(Number(v)));

describe(`the Grafana dashboard for an install in namespace ${NS} (real service, operator, Prometheus)`, () => {
  before(
    async () => {
      dir = mkdtempSync(join(tmpdir(), 'infra-dashboard-'));
      cp = await startControlPlane({ controllers: false, log: !!process.env.K8S_TEST_LOG });
      const kubectl = async (args: string[], input?: string) => {
        const r = await cp.kubectl(args, { input });
        assert.equal(r.code, 0, `kubectl ${args.join(' ')}: ${r.stderr}`);
      };
      await kubectl(['create', 'namespace', NS]);
      await kubectl(['apply', '--server-side', '-f', '-'], JSON.stringify(modelVersionCrd()));
      await kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd', '--all']);

      svc = await startService();
      await svc.app.listen({ host: '127.0.0.1', port: 0 });
      const servicePort = (svc.app.server.address() as { port: number }).port;
      const operatorPorts = [await freePort(), await freePort()];
      promPort = await freePort();

      const target = (job: string, port: number, pod: string) =>
        `  - job_name: ${job}-${pod}\n    scrape_interval: ${SCRAPE_SECONDS}s\n    static_configs:\n      - targets: ['127.0.0.1:${port}']\n        labels: {job: ${job}, namespace: ${NS}, pod: ${pod}, endpoint: metrics}\n`;
      writeFileSync(
        join(dir, 'prometheus.yml'),
        'scrape_configs:\n' +
          target(jobOf('analytics-api'), servicePort, SERVICE_POD) +
          OPERATOR_PODS.map((pod, i) => target(jobOf('analytics-operator'), operatorPorts[i]!, pod)).join(''),
      );
      prometheus = startProcess('prometheus', [
        `--config.file=${join(dir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${promPort}`,
      ]);
      start = Date.now();
      for (const [i, pod] of OPERATOR_PODS.entries()) {
        operators.push(
          startProcess(process.execPath, [join(repoRoot, 'operator/main.ts')], {
            cwd: repoRoot,
            env: {
              ...process.env,
              KUBECONFIG: cp.kubeconfigPath,
              NAMESPACE: NS,
              POD_NAME: pod,
              METRICS_HOST: '127.0.0.1',
              METRICS_PORT: String(operatorPorts[i]),
              LOG_LEVEL: 'warn',
            },
          }),
        );
      }
      await waitFor(
        `Prometheus scraping the service and both operators (${recentOutput(prometheus).slice(-300)})`,
        async () => (await instant(`sum(up{namespace="${NS}"})`))[0]?.value?.[1] === '3',
        60_000,
        500,
      );

      // What a day of use leaves in the metrics: versions uploaded and one promoted, predictions
      // (repeated ones hit the cache), requests for a model that does not exist, a ModelVersion.
      for (const [name, version, as] of [
        ['iris-logreg', '1', 'iris'],
        ['iris-mlp', '2', 'iris'],
        ['wine-forest', '1', 'wine'],
      ] as const) {
        const r = await uploadSample(svc.app, name, version, {}, as);
        assert.equal(r.statusCode, 201, r.body);
      }
      const promote = await svc.app.inject({ method: 'POST', url: '/api/v1/models/iris/versions/2/promote' });
      assert.equal(promote.statusCode, 200, promote.body);
      const sample = readFileSync(join(repoRoot, 'operator/samples/iris-configmap.yaml'), 'utf8').replaceAll('namespace: analytics', `namespace: ${NS}`);
      await kubectl(['apply', '-f', '-'], sample);
      const base = `http://127.0.0.1:${servicePort}`;
      const post = (path: string, body: unknown) =>
        fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      const until = Date.now() + 8_000;
      for (let i = 0; Date.now() < until; i++) {
        // One question in three is new (an ONNX run), the others repeat (cache hits).
        const x = i % 3 === 0 ? 4 + i / 100 : 5;
        assert.equal((await post('/api/v1/predict/iris', { features: { ...IRIS, 'sepal length (cm)': x } })).status, 200);
        assert.equal((await post('/api/v1/predict/no-such-model', { features: IRIS })).status, 404);
        await new Promise((r) => setTimeout(r, 50));
      }
      // Two more scrapes after the last request.
      await new Promise((r) => setTimeout(r, 2_500));
    },
    { timeout: 300_000 },
  );

  after(async () => {
    for (const op of operators) await stopProcess(op);
    if (prometheus) await stopProcess(prometheus);
    await svc?.close();
    await cp?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('no query names a namespace or a job: each goes through the variables', () => {
    assert.deepEqual(
      variables.map((v) => v.name),
      ['datasource', 'namespace', 'job', 'operator_job', 'pod'],
    );
    assert.equal(variableValue('namespace'), NS, 'the namespace variable defaults to where it was installed');
    for (const p of panels) {
      assert.deepEqual(p.datasource, { type: 'prometheus', uid: '$' + '{datasource}' }, p.title); // Grafana's syntax, not a template literal
      for (const t of p.targets as Obj[]) {
        assert.match(t.expr, /namespace="\$namespace"/, `${p.title}: ${t.expr}`);
        assert.match(t.expr, /job="\$(job|operator_job)"/, `${p.title}: ${t.expr}`);
        assert.doesNotMatch(t.expr, /namespace="(?!\$)|job="(?!\$)/, `${p.title}: ${t.expr}`);
      }
    }
  });

  test('units are seconds, bytes, percent, per second or plain counts', () => {
    for (const p of panels)
      assert.ok(['s', 'bytes', 'percentunit', 'reqps', 'ops', 'short'].includes(p.fieldConfig.defaults.unit), `${p.title}: ${p.fieldConfig.defaults.unit}`);
    const unit = (title: string) => panels.find((p) => p.title === title)!.fieldConfig.defaults.unit;
    assert.equal(unit('Latency p50 / p99'), 's');
    assert.equal(unit('5xx share of responses'), 'percentunit');
    assert.equal(unit('Request rate'), 'reqps');
    assert.equal(unit('Memory in use'), 'bytes');
  });

  test("the variables' queries offer the namespace, the jobs and the pod (Grafana's label_values)", async () => {
    const labelValues = async (query: string) => {
      const m = /^label_values\((.+), (\w+)\)$/.exec(query)!;
      const url = new URL(`http://127.0.0.1:${promPort}/api/v1/label/${m[2]}/values`);
      url.searchParams.set('match[]', substitute(m[1]!));
      return ((await (await fetch(url)).json()) as { data: string[] }).data;
    };
    const q = (name: string) => variables.find((v) => v.name === name)!.query.query as string;
    assert.ok((await labelValues(q('namespace'))).includes(NS));
    assert.deepEqual(await labelValues(q('job')), [variableValue('job')]);
    assert.deepEqual(await labelValues(q('operator_job')), [variableValue('operator_job')]);
    assert.deepEqual(await labelValues(q('pod')), [SERVICE_POD]);
  });

  test('every panel query returns data for this namespace over the time range', { timeout: 120_000 }, async () => {
    const empty: string[] = [];
    for (const p of panels) {
      for (const t of p.targets as Obj[]) {
        const result = t.instant ? await instant(substitute(t.expr)) : await range(substitute(t.expr));
        if (!result.some(finite)) empty.push(`${p.title} [${t.refId}]: ${substitute(t.expr)}`);
      }
    }
    assert.deepEqual(empty, [], 'panels without data');
    // And the namespace variable is what selects it: the default install's namespace has none.
    const byRoute = panels.find((p) => p.title === 'Request rate')!.targets[0].expr as string;
    assert.deepEqual(await range(substitute(byRoute).replace(`namespace="${NS}"`, 'namespace="analytics"')), []);
  });

  test('lines that should read 0 when healthy do: the 5xx share and 429s are 0, not "No data"', async () => {
    const expr = (title: string, legend: string) => (panels.find((p) => p.title === title)!.targets as Obj[]).find((t) => t.legendFormat === legend)!.expr;
    const last = async (e: string) => Number((await instant(substitute(e)))[0]?.value?.[1]);
    assert.equal(await last(expr('5xx share of responses', '5xx')), 0);
    assert.equal(await last(expr('Error responses', '429 rate-limited')), 0);
    assert.ok((await last(expr('Error responses', 'all errors'))) > 0, 'the 404s are counted');
  });

  test('the serving version per model: iris serves the promoted 2, wine 1, each on the one pod', async () => {
    const table = panels.find((p) => p.title === 'Serving version per model')!;
    const rows = (await instant(substitute(table.targets[0].expr)))
      .map((s) => [s.metric.model, s.metric.version, s.value![1]])
      .sort((a, b) => a[0]!.localeCompare(b[0]!));
    assert.deepEqual(rows, [
      ['iris', '2', '1'],
      ['wine', '1', '1'],
    ]);
  });

  test('the operator panels: one leader and one standby, the ModelVersion counted by phase', async () => {
    const leader = panels.find((p) => p.title === 'Operator leader')!;
    const byPod = Object.fromEntries((await instant(substitute(leader.targets[0].expr))).map((s) => [s.metric.pod, s.value![1]]));
    assert.deepEqual(Object.values(byPod).sort(), ['0', '1'], JSON.stringify(byPod));
    assert.deepEqual(Object.keys(byPod).sort(), OPERATOR_PODS);
    const phases = panels.find((p) => p.title === 'ModelVersions by phase')!;
    const counted = (await instant(substitute(phases.targets[0].expr))).reduce((n, s) => n + Number(s.value![1]), 0);
    assert.equal(counted, 1);
  });
});
