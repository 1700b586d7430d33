import { figures, platformTargets } from '../../contract/figures.ts';
import { OPERATOR_NAME, SERVICE_NAME } from '../names.ts';

// The alerts of the PrometheusRule, as data: the specification's figures and the platform's
// targets (contract/figures.ts) become thresholds here, each alert links its runbook
// (docs/runbooks.md, one heading per alert), and the tests run every expression through
// `promtool check rules` and the thresholds through `promtool test rules`.

interface AlertRule {
  alert: string;
  expr: string;
  for?: string;
  labels: { severity: 'warning' | 'critical' };
  annotations: { summary: string; description: string; runbook_url: string };
}

export interface RuleGroup {
  name: string;
  rules: AlertRule[];
}

export interface AlertSettings {
  /** The namespace the service and the operator run in (the PrometheusRule's own). */
  namespace: string;
  /** Where docs/runbooks.md is served; each alert links `${runbookBaseUrl}#<alert in lowercase>`. */
  runbookBaseUrl: string;
}

/**
 * Scrape jobs as the Prometheus operator names them: the Service a ServiceMonitor found the
 * target through (the service's, and the operator's metrics Service).
 */
export const SERVICE_JOB = SERVICE_NAME;
export const OPERATOR_JOB = `${OPERATOR_NAME}-metrics`;

/** Routes that serve predictions (route templates, as the service labels them). */
export const PREDICT_ROUTES = '/api/v1/predict/.*|/v2/models/.*/infer';

/** The runbook anchor of an alert: its heading in docs/runbooks.md, as Markdown renderers slug it. */
export const runbookAnchor = (alert: string) => alert.toLowerCase();

const percent = (x: number) => `${Math.round(x * 100)}%`;

/** Loads slower than the target in the last hour, per pod and version (see AnalyticsApiModelLoadSlow). */
function slowLoads(s: string): string {
  const by = 'sum by (namespace, pod, model, version)';
  const le = `le="${figures.targets.modelLoadSeconds}"`;
  const now = `(${by} (model_load_duration_seconds_count{${s}}) - ${by} (model_load_duration_seconds_bucket{${s},${le}}))`;
  const hourAgo = `(${by} (model_load_duration_seconds_count{${s}} offset 1h) - ${by} (model_load_duration_seconds_bucket{${s},${le}} offset 1h))`;
  return `${now} > 0 unless ${hourAgo}\nor\n${now} - ${hourAgo} > 0`;
}

export function alertGroups({ namespace, runbookBaseUrl }: AlertSettings): RuleGroup[] {
  const s = `job="${SERVICE_JOB}",namespace="${namespace}"`;
  const o = `job="${OPERATOR_JOB}",namespace="${namespace}"`;
  const t = figures.targets;
  const p = platformTargets;
  const rule = (r: Omit<AlertRule, 'annotations'> & { annotations: Omit<AlertRule['annotations'], 'runbook_url'> }): AlertRule => ({
    ...r,
    annotations: { ...r.annotations, runbook_url: `${runbookBaseUrl}#${runbookAnchor(r.alert)}` },
  });
  return [
    {
      name: 'analytics-api.performance',
      rules: [
        rule({
          alert: 'AnalyticsApiCacheHitRatioLow',
          expr:
            `sum(rate(cache_requests_total{${s},result="hit"}[10m]))\n` +
            `  / sum(rate(cache_requests_total{${s}}[10m])) < ${t.cacheHitRatio}\n` +
            `and sum(rate(cache_requests_total{${s}}[10m])) > ${p.minCacheLookupsPerSecond}`,
          for: '15m',
          labels: { severity: 'warning' },
          annotations: {
            summary: `Prediction cache hit ratio under ${percent(t.cacheHitRatio)}`,
            description: `{{ $value | humanizePercentage }} of cache lookups hit over 10 minutes in ${namespace}; the specification asks more than ${percent(t.cacheHitRatio)}. Lookups that failed (Redis down or slow) count as misses.`,
          },
        }),
        rule({
          alert: 'AnalyticsApiMemoryNearLimit',
          expr: `max by (namespace, pod) (container_memory_usage_ratio{${s}}) > ${t.memoryOfLimit}`,
          for: '10m',
          labels: { severity: 'warning' },
          annotations: {
            summary: `Memory over ${percent(t.memoryOfLimit)} of the container's limit`,
            description: `Pod {{ $labels.pod }} uses {{ $value | humanizePercentage }} of its memory limit; the specification asks under ${percent(t.memoryOfLimit)}.`,
          },
        }),
        rule({
          // CPU seconds are a counter: the rate over a fixed window, whoever scrapes and however
          // often, divided by the cgroup's limit in cores.
          alert: 'AnalyticsApiCpuNearLimit',
          expr: `max by (namespace, pod) (rate(container_cpu_seconds_total{${s}}[5m]) / container_cpu_limit_cores{${s}}) > ${t.cpuOfLimit}`,
          for: '15m',
          labels: { severity: 'warning' },
          annotations: {
            summary: `CPU over ${percent(t.cpuOfLimit)} of the container's limit`,
            description: `Pod {{ $labels.pod }} used {{ $value | humanizePercentage }} of its CPU limit over 5 minutes; the specification asks under ${percent(t.cpuOfLimit)}.`,
          },
        }),
        rule({
          // Loads are rare: a version is loaded once per pod, and its histogram series appears
          // with that first load already counted, so increase() never sees it. Count the loads
          // above the bucket at exactly the target per pod instead: slow loads in series that
          // are newer than an hour, or more of them than an hour ago.
          alert: 'AnalyticsApiModelLoadSlow',
          expr: slowLoads(s),
          labels: { severity: 'warning' },
          annotations: {
            summary: `A model took more than ${t.modelLoadSeconds} s to load`,
            description: `{{ $labels.model }} version {{ $labels.version }} on {{ $labels.pod }}: {{ $value | humanize }} load(s) in the last hour took over ${t.modelLoadSeconds} s (the specification: under ${t.modelLoadSeconds} s).`,
          },
        }),
        rule({
          alert: 'AnalyticsApiPredictLatencyHigh',
          expr:
            `histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{${s},route=~"${PREDICT_ROUTES}"}[5m])))\n` +
            `  > ${p.predictP99Seconds}`,
          for: '10m',
          labels: { severity: 'warning' },
          annotations: {
            summary: `Prediction p99 latency over ${p.predictP99Seconds} s`,
            description: `The 99th percentile of prediction requests in ${namespace} is {{ $value | humanizeDuration }} over 5 minutes.`,
          },
        }),
        rule({
          alert: 'AnalyticsApiServerErrors',
          expr: `sum(rate(http_requests_total{${s},status_code=~"5.."}[5m]))\n` + `  / sum(rate(http_requests_total{${s}}[5m])) > ${p.serverErrorRatio}`,
          for: '5m',
          labels: { severity: 'critical' },
          annotations: {
            summary: `More than ${percent(p.serverErrorRatio)} of responses are 5xx`,
            description: `{{ $value | humanizePercentage }} of requests in ${namespace} answered 5xx over 5 minutes.`,
          },
        }),
      ],
    },
    {
      name: 'analytics-api.availability',
      rules: [
        rule({
          // `absent` too: a ServiceMonitor that finds no target leaves no `up` series at all.
          alert: 'AnalyticsApiDown',
          expr: `sum(up{${s}}) == 0 or absent(up{${s}})`,
          for: '5m',
          labels: { severity: 'critical' },
          annotations: {
            summary: `No ${SERVICE_NAME} pod in ${namespace} is scraped successfully`,
            description: `Every target of the ${SERVICE_NAME} ServiceMonitor has been down, or there has been none, for 5 minutes.`,
          },
        }),
        rule({
          alert: 'AnalyticsOperatorDown',
          expr: `sum(up{${o}}) == 0 or absent(up{${o}})`,
          for: '10m',
          labels: { severity: 'warning' },
          annotations: {
            summary: `No ${OPERATOR_NAME} replica in ${namespace} is scraped successfully`,
            description: 'ModelVersions are not reconciled: no import, routing change or backup CronJob update happens until the operator is back.',
          },
        }),
        rule({
          // The operator's own gauge of ModelVersions by phase (the leader's; a standby's cache counts too, so max).
          alert: 'AnalyticsModelVersionFailed',
          expr: `max(analytics_operator_model_versions{${o},phase="Failed"}) > 0`,
          for: '5m',
          labels: { severity: 'warning' },
          annotations: {
            summary: `{{ $value }} ModelVersion(s) in ${namespace} are Failed`,
            description:
              'A ModelVersion could not import (a wrong sha256, a source that cannot be read, a duplicate version, an invalid spec); its status and its Warning events say why.',
          },
        }),
        rule({
          alert: 'AnalyticsRolloutRolledBack',
          expr: `sum(increase(analytics_operator_rollouts_total{${o},result="rolled_back"}[15m])) > 0`,
          labels: { severity: 'warning' },
          annotations: {
            summary: `A canary or shadow rollout in ${namespace} was rolled back`,
            description:
              'A new model version failed a check of its rollout (error rate, p99 latency, accuracy from feedback, shadow agreement); the stable version serves. Its status.rollout.failedCheck has the figures.',
          },
        }),
      ],
    },
  ];
}
