import { figures } from '../../contract/figures.ts';
import { NAMESPACE, OPERATOR_NAME, SERVICE_NAME } from '../names.ts';

// The alerts of the PrometheusRule, as data: the specification's performance figures
// (contract/figures.ts) become thresholds here, and the tests run every expression through
// `promtool check rules` and the thresholds through `promtool test rules`.

interface AlertRule {
  alert: string;
  expr: string;
  for?: string;
  labels: { severity: 'warning' | 'critical' };
  annotations: { summary: string; description: string };
}

export interface RuleGroup {
  name: string;
  rules: AlertRule[];
}

/**
 * Thresholds the specification leaves open ("Maximum response time: To be determined", "Error
 * rates"): this platform's choices, stated once.
 */
export const platformTargets = {
  /** p99 of a prediction request, seconds (a bucket boundary of http_request_duration_seconds). */
  predictP99Seconds: 0.5,
  /** Share of responses that are 5xx. */
  serverErrorRatio: 0.01,
  /** Below this many cache lookups per second the hit ratio says nothing. */
  minCacheLookupsPerSecond: 0.1,
} as const;

/** The scrape job of the service's ServiceMonitor (the Service's name) in its namespace. */
export const serviceSelector = `job="${SERVICE_NAME}",namespace="${NAMESPACE}"`;
const operatorSelector = `job="${OPERATOR_NAME}-metrics",namespace="${NAMESPACE}"`;
/** Routes that serve predictions (route templates, as the service labels them). */
export const PREDICT_ROUTES = '/api/v1/predict/.*|/v2/models/.*/infer';

const t = figures.targets;
const percent = (x: number) => `${Math.round(x * 100)}%`;

export const alertGroups: RuleGroup[] = [
  {
    name: 'analytics-api.performance',
    rules: [
      {
        alert: 'AnalyticsApiCacheHitRatioLow',
        expr:
          `sum(rate(cache_requests_total{${serviceSelector},result="hit"}[10m]))\n` +
          `  / sum(rate(cache_requests_total{${serviceSelector}}[10m])) < ${t.cacheHitRatio}\n` +
          `and sum(rate(cache_requests_total{${serviceSelector}}[10m])) > ${platformTargets.minCacheLookupsPerSecond}`,
        for: '15m',
        labels: { severity: 'warning' },
        annotations: {
          summary: `Prediction cache hit ratio under ${percent(t.cacheHitRatio)}`,
          description: `{{ $value | humanizePercentage }} of cache lookups hit over 10 minutes; the specification asks more than ${percent(t.cacheHitRatio)}. Lookups that failed (Redis down or slow) count as misses.`,
        },
      },
      {
        alert: 'AnalyticsApiMemoryNearLimit',
        expr: `max by (namespace, pod) (container_memory_usage_ratio{${serviceSelector}}) > ${t.memoryOfLimit}`,
        for: '10m',
        labels: { severity: 'warning' },
        annotations: {
          summary: `Memory over ${percent(t.memoryOfLimit)} of the container's limit`,
          description: `Pod {{ $labels.pod }} uses {{ $value | humanizePercentage }} of its memory limit; the specification asks under ${percent(t.memoryOfLimit)}.`,
        },
      },
      {
        alert: 'AnalyticsApiCpuNearLimit',
        expr: `max by (namespace, pod) (container_cpu_usage_ratio{${serviceSelector}}) > ${t.cpuOfLimit}`,
        for: '15m',
        labels: { severity: 'warning' },
        annotations: {
          summary: `CPU over ${percent(t.cpuOfLimit)} of the container's limit`,
          description: `Pod {{ $labels.pod }} uses {{ $value | humanizePercentage }} of its CPU limit; the specification asks under ${percent(t.cpuOfLimit)}.`,
        },
      },
      {
        // Loads are rare events: count those slower than the target (above the histogram bucket
        // at exactly the target) over the last hour, instead of a quantile of a sparse rate.
        alert: 'AnalyticsApiModelLoadSlow',
        expr:
          `sum by (namespace, model, version) (increase(model_load_duration_seconds_count{${serviceSelector}}[1h]))\n` +
          `  - sum by (namespace, model, version) (increase(model_load_duration_seconds_bucket{${serviceSelector},le="${t.modelLoadSeconds}"}[1h])) > 0`,
        labels: { severity: 'warning' },
        annotations: {
          summary: `A model took more than ${t.modelLoadSeconds} s to load`,
          description: `{{ $labels.model }} version {{ $labels.version }}: about {{ $value | humanize }} load(s) in the last hour took over ${t.modelLoadSeconds} s (the specification: under ${t.modelLoadSeconds} s).`,
        },
      },
      {
        alert: 'AnalyticsApiPredictLatencyHigh',
        expr:
          `histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{${serviceSelector},route=~"${PREDICT_ROUTES}"}[5m])))\n` +
          `  > ${platformTargets.predictP99Seconds}`,
        for: '10m',
        labels: { severity: 'warning' },
        annotations: {
          summary: `Prediction p99 latency over ${platformTargets.predictP99Seconds} s`,
          description: `The 99th percentile of prediction requests is {{ $value | humanizeDuration }} over 5 minutes.`,
        },
      },
      {
        alert: 'AnalyticsApiServerErrors',
        expr:
          `sum(rate(http_requests_total{${serviceSelector},status_code=~"5.."}[5m]))\n` +
          `  / sum(rate(http_requests_total{${serviceSelector}}[5m])) > ${platformTargets.serverErrorRatio}`,
        for: '5m',
        labels: { severity: 'critical' },
        annotations: {
          summary: `More than ${percent(platformTargets.serverErrorRatio)} of responses are 5xx`,
          description: `{{ $value | humanizePercentage }} of requests answered 5xx over 5 minutes.`,
        },
      },
    ],
  },
  {
    name: 'analytics-api.availability',
    rules: [
      {
        alert: 'AnalyticsApiDown',
        expr: `sum(up{${serviceSelector}}) == 0`,
        for: '5m',
        labels: { severity: 'critical' },
        annotations: {
          summary: 'No analytics-api pod is scraped successfully',
          description: 'Every target of the analytics-api ServiceMonitor has been down for 5 minutes.',
        },
      },
      {
        alert: 'AnalyticsOperatorDown',
        expr: `sum(up{${operatorSelector}}) == 0`,
        for: '10m',
        labels: { severity: 'warning' },
        annotations: {
          summary: 'No analytics-operator replica is scraped successfully',
          description: 'ModelVersions are not reconciled: no import, routing change or backup CronJob update happens until the operator is back.',
        },
      },
    ],
  },
];
