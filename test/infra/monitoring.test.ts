import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { figures, platformTargets } from '../../contract/figures.ts';
import { ServiceMetrics } from '../../service/observability/metrics.ts';
import { runbookAnchor } from '../../infra/monitoring/alerts.ts';
import { dashboardQueries } from '../../infra/monitoring/dashboard.ts';
import { PROMTOOL, distObjects, find, repoRoot, run, type Obj } from './helpers.ts';

// The PrometheusRule and the dashboard as deployed (infra/dist/), through Prometheus's own
// promtool: every expression parses, the alerts fire at the specification's thresholds and not
// below them, on synthetic series, and each links a runbook that exists.

const dir = mkdtempSync(join(tmpdir(), 'infra-monitoring-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const rule = find(distObjects(), 'PrometheusRule', 'analytics-api');
const groups = rule.spec.groups as { name: string; rules: Obj[] }[];

function writeJson(name: string, value: unknown): string {
  const path = join(dir, name);
  writeFileSync(path, JSON.stringify(value, null, 2)); // JSON is YAML
  return path;
}

async function promtool(args: string[]) {
  const r = await run(PROMTOOL, args, { timeoutMs: 60_000 }).catch((err: Error) => {
    throw new Error(`promtool not runnable (${err.message}): make test installs it (scripts/system-packages.sh, Debian's prometheus package)`);
  });
  return r;
}

const sel = 'job="analytics-api",namespace="analytics"';
const s = (metric: string, labels: string) => `${metric}{${sel}${labels ? `,${labels}` : ''}}`;

describe('monitoring rules and dashboard (promtool)', () => {
  test('promtool check rules: every alert of the PrometheusRule', { timeout: 60_000 }, async () => {
    const file = writeJson('rules.json', { groups });
    const r = await promtool(['check', 'rules', file]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const count = groups.reduce((n, g) => n + g.rules.length, 0);
    assert.match(r.stdout, new RegExp(`SUCCESS: ${count} rules found`));
    const names = groups.flatMap((g) => g.rules.map((x) => x.alert));
    for (const a of [
      'AnalyticsApiCacheHitRatioLow',
      'AnalyticsApiMemoryNearLimit',
      'AnalyticsApiCpuNearLimit',
      'AnalyticsApiModelLoadSlow',
      'AnalyticsApiPredictLatencyHigh',
      'AnalyticsApiServerErrors',
    ]) {
      assert.ok(names.includes(a), a);
    }
  });

  test('every alert has a runbook_url whose anchor is a heading of docs/runbooks.md', () => {
    const runbooks = readFileSync(join(repoRoot, 'docs/runbooks.md'), 'utf8');
    const anchors = new Set(
      [...runbooks.matchAll(/^#+ (.+)$/gm)].map((m) =>
        m[1]!
          .trim()
          .toLowerCase()
          .replace(/[^a-z0-9 -]/g, '')
          .replaceAll(' ', '-'),
      ),
    );
    for (const r of groups.flatMap((g) => g.rules)) {
      assert.equal(r.annotations.runbook_url, `docs/runbooks.md#${runbookAnchor(r.alert)}`, r.alert);
      assert.ok(anchors.has(runbookAnchor(r.alert)), `docs/runbooks.md has a heading for ${r.alert}`);
    }
  });

  test('promtool check rules: every query of the Grafana dashboard', { timeout: 60_000 }, async () => {
    const dashboard = JSON.parse(Object.values(find(distObjects(), 'ConfigMap', 'analytics-api-dashboard').data)[0] as string);
    const exprs = (dashboard.panels as Obj[]).flatMap((p) => ((p.targets ?? []) as Obj[]).map((t) => t.expr as string));
    assert.deepEqual(
      exprs,
      dashboardQueries().map((q) => q.expr),
    );
    const vars = { $__rate_interval: '5m', $namespace: 'analytics', $operator_job: 'analytics-operator-metrics', $job: 'analytics-api', $pod: '.*' };
    const substitute = (e: string) => Object.entries(vars).reduce((x, [k, v]) => x.replaceAll(k, v), e);
    const rules = exprs.map((expr, i) => ({ record: `dashboard:query_${i}`, expr: substitute(expr) }));
    const r = await promtool(['check', 'rules', writeJson('dashboard.json', { groups: [{ name: 'dashboard', rules }] })]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, new RegExp(`SUCCESS: ${rules.length} rules found`));
  });

  test("the model-load alert counts loads above a bucket the service's histogram really has", () => {
    const metrics = new ServiceMetrics();
    const buckets = (metrics.loadDuration as unknown as { upperBounds: number[] }).upperBounds;
    assert.ok(buckets.includes(figures.targets.modelLoadSeconds), `bucket ${figures.targets.modelLoadSeconds} in ${buckets}`);
    const latency = (metrics.httpDuration as unknown as { upperBounds: number[] }).upperBounds;
    assert.ok(latency.includes(platformTargets.predictP99Seconds));
  });

  test('promtool test rules: each alert fires at its threshold and stays quiet below it', { timeout: 60_000 }, async () => {
    // Annotations carry templated text; the thresholds are what is tested here.
    const bare = groups.map((g) => ({ name: g.name, rules: g.rules.map(({ annotations: _a, ...r }) => r) }));
    const rulesFile = writeJson('bare-rules.json', { groups: bare });
    const t = figures.targets;
    const perMinute = (perSecond: number) => Math.round(perSecond * 60);
    const pod = 'pod="analytics-api-0"';
    const cases: Obj[] = [
      // Cache: 7 hits and 3 misses a second (0.7 < 0.8) fires; 9 and 1 does not; 0.7 at a trickle does not.
      {
        input_series: [
          { series: s('cache_requests_total', 'model="iris",result="hit"'), values: `0+${perMinute(10 * (t.cacheHitRatio - 0.1))}x60` },
          { series: s('cache_requests_total', 'model="iris",result="miss"'), values: `0+${perMinute(10 * (1.1 - t.cacheHitRatio))}x60` },
        ],
        alert_rule_test: [{ eval_time: '40m', alertname: 'AnalyticsApiCacheHitRatioLow', exp_alerts: [{ exp_labels: { severity: 'warning' } }] }],
      },
      {
        input_series: [
          { series: s('cache_requests_total', 'model="iris",result="hit"'), values: `0+${perMinute(10 * (t.cacheHitRatio + 0.1))}x60` },
          { series: s('cache_requests_total', 'model="iris",result="miss"'), values: `0+${perMinute(10 * (0.9 - t.cacheHitRatio))}x60` },
        ],
        alert_rule_test: [{ eval_time: '40m', alertname: 'AnalyticsApiCacheHitRatioLow', exp_alerts: [] }],
      },
      {
        input_series: [
          { series: s('cache_requests_total', 'model="iris",result="hit"'), values: '0+1x60' },
          { series: s('cache_requests_total', 'model="iris",result="miss"'), values: '0+2x60' },
        ],
        alert_rule_test: [{ eval_time: '40m', alertname: 'AnalyticsApiCacheHitRatioLow', exp_alerts: [] }],
      },
      // Memory just over and just under its figure; CPU as a counter of seconds against a 4-core
      // limit, rising at 95 % and 85 % of it (60 s × 4 cores × share per minute).
      {
        input_series: [
          { series: s('container_memory_usage_ratio', pod), values: `${t.memoryOfLimit + 0.05}x30` },
          { series: s('container_cpu_seconds_total', pod), values: `0+${Math.round(60 * 4 * (t.cpuOfLimit + 0.05))}x30` },
          { series: s('container_cpu_limit_cores', pod), values: '4x30' },
        ],
        alert_rule_test: [
          {
            eval_time: '20m',
            alertname: 'AnalyticsApiMemoryNearLimit',
            exp_alerts: [{ exp_labels: { severity: 'warning', namespace: 'analytics', pod: 'analytics-api-0' } }],
          },
          {
            eval_time: '20m',
            alertname: 'AnalyticsApiCpuNearLimit',
            exp_alerts: [{ exp_labels: { severity: 'warning', namespace: 'analytics', pod: 'analytics-api-0' } }],
          },
        ],
      },
      {
        input_series: [
          { series: s('container_memory_usage_ratio', pod), values: `${t.memoryOfLimit - 0.05}x30` },
          { series: s('container_cpu_seconds_total', pod), values: `0+${Math.round(60 * 4 * (t.cpuOfLimit - 0.05))}x30` },
          { series: s('container_cpu_limit_cores', pod), values: '4x30' },
        ],
        alert_rule_test: [
          { eval_time: '20m', alertname: 'AnalyticsApiMemoryNearLimit', exp_alerts: [] },
          { eval_time: '20m', alertname: 'AnalyticsApiCpuNearLimit', exp_alerts: [] },
        ],
      },
      // A version is loaded once per pod, and its histogram series appears with that load in it
      // (prom-client creates a label set at its first observation): a slow one (above the
      // target's bucket) fires, a fast one does not.
      {
        input_series: [
          { series: s('model_load_duration_seconds_count', `${pod},model="iris",version="2"`), values: '1x30' },
          { series: s('model_load_duration_seconds_bucket', `${pod},model="iris",version="2",le="${t.modelLoadSeconds}"`), values: '0x30' },
          { series: s('model_load_duration_seconds_count', `${pod},model="wine",version="1"`), values: '1x30' },
          { series: s('model_load_duration_seconds_bucket', `${pod},model="wine",version="1",le="${t.modelLoadSeconds}"`), values: '1x30' },
        ],
        alert_rule_test: [
          {
            eval_time: '15m',
            alertname: 'AnalyticsApiModelLoadSlow',
            exp_alerts: [{ exp_labels: { severity: 'warning', namespace: 'analytics', pod: 'analytics-api-0', model: 'iris', version: '2' } }],
          },
        ],
      },
      // A slow load more than an hour ago is over; a second slow load of the same version is new.
      {
        input_series: [
          { series: s('model_load_duration_seconds_count', `${pod},model="iris",version="1"`), values: '1x100' },
          { series: s('model_load_duration_seconds_bucket', `${pod},model="iris",version="1",le="${t.modelLoadSeconds}"`), values: '0x100' },
          { series: s('model_load_duration_seconds_count', `${pod},model="wine",version="3"`), values: '1x80 2x20' },
          { series: s('model_load_duration_seconds_bucket', `${pod},model="wine",version="3",le="${t.modelLoadSeconds}"`), values: '0x100' },
        ],
        alert_rule_test: [
          {
            eval_time: '90m',
            alertname: 'AnalyticsApiModelLoadSlow',
            exp_alerts: [{ exp_labels: { severity: 'warning', namespace: 'analytics', pod: 'analytics-api-0', model: 'wine', version: '3' } }],
          },
        ],
      },
      // Prediction latency: every request between 0.5 s and 1 s (p99 above the target) fires.
      {
        input_series: [
          {
            series: s(
              'http_request_duration_seconds_bucket',
              `method="POST",route="/api/v1/predict/:model_id",status_code="200",le="${platformTargets.predictP99Seconds}"`,
            ),
            values: '0x30',
          },
          { series: s('http_request_duration_seconds_bucket', 'method="POST",route="/api/v1/predict/:model_id",status_code="200",le="1"'), values: '0+600x30' },
          {
            series: s('http_request_duration_seconds_bucket', 'method="POST",route="/api/v1/predict/:model_id",status_code="200",le="+Inf"'),
            values: '0+600x30',
          },
          // A slow route that is not a prediction does not count.
          { series: s('http_request_duration_seconds_bucket', 'method="POST",route="/api/v1/models",status_code="201",le="+Inf"'), values: '0+6000x30' },
        ],
        alert_rule_test: [{ eval_time: '20m', alertname: 'AnalyticsApiPredictLatencyHigh', exp_alerts: [{ exp_labels: { severity: 'warning' } }] }],
      },
      // 5xx: 2 % fires, 0.5 % does not.
      {
        input_series: [
          { series: s('http_requests_total', 'method="POST",route="/api/v1/predict/:model_id",status_code="200"'), values: '0+5880x30' },
          {
            series: s('http_requests_total', 'method="POST",route="/api/v1/predict/:model_id",status_code="503"'),
            values: `0+${(5880 * (2 * platformTargets.serverErrorRatio)) / (1 - 2 * platformTargets.serverErrorRatio)}x30`,
          },
        ],
        alert_rule_test: [{ eval_time: '20m', alertname: 'AnalyticsApiServerErrors', exp_alerts: [{ exp_labels: { severity: 'critical' } }] }],
      },
      {
        input_series: [
          { series: s('http_requests_total', 'method="POST",route="/api/v1/predict/:model_id",status_code="200"'), values: '0+5970x30' },
          {
            series: s('http_requests_total', 'method="POST",route="/api/v1/predict/:model_id",status_code="500"'),
            values: `0+${Math.round((6000 * platformTargets.serverErrorRatio) / 2)}x30`,
          },
        ],
        alert_rule_test: [{ eval_time: '20m', alertname: 'AnalyticsApiServerErrors', exp_alerts: [] }],
      },
      // Every target down; no target at all (a ServiceMonitor that selects nothing); one up of two.
      {
        input_series: [{ series: `up{${sel},pod="analytics-api-0"}`, values: '1x5 0x20' }],
        alert_rule_test: [{ eval_time: '15m', alertname: 'AnalyticsApiDown', exp_alerts: [{ exp_labels: { severity: 'critical' } }] }],
      },
      {
        input_series: [{ series: 'up{job="something-else",namespace="analytics"}', values: '1x20' }],
        alert_rule_test: [
          {
            eval_time: '15m',
            alertname: 'AnalyticsApiDown',
            exp_alerts: [{ exp_labels: { severity: 'critical', job: 'analytics-api', namespace: 'analytics' } }],
          },
          {
            eval_time: '15m',
            alertname: 'AnalyticsOperatorDown',
            exp_alerts: [{ exp_labels: { severity: 'warning', job: 'analytics-operator-metrics', namespace: 'analytics' } }],
          },
        ],
      },
      {
        input_series: [
          { series: `up{${sel},pod="analytics-api-0"}`, values: '0x20' },
          { series: `up{${sel},pod="analytics-api-1"}`, values: '1x20' },
        ],
        alert_rule_test: [{ eval_time: '15m', alertname: 'AnalyticsApiDown', exp_alerts: [] }],
      },
    ];
    const testsFile = writeJson('tests.json', {
      rule_files: [rulesFile],
      evaluation_interval: '1m',
      tests: cases.map((c) => ({ interval: '1m', ...c })),
    });
    const r = await promtool(['test', 'rules', testsFile]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /SUCCESS/);
  });
});
