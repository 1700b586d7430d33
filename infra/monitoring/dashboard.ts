import { figures } from '../../contract/figures.ts';
import { SERVICE_NAME } from '../names.ts';
import { PREDICT_ROUTES, platformTargets, serviceSelector } from './alerts.ts';

// The Grafana dashboard (JSON model), shipped as a ConfigMap that Grafana's dashboard sidecar
// picks up by its label. Queries use Grafana's $__rate_interval; the tests run each through
// promtool with a fixed window.

interface PanelSpec {
  title: string;
  description: string;
  unit: string;
  queries: { expr: string; legend: string }[];
  /** A line at the target (the specification's figure, or the platform's), red on the bad side. */
  threshold?: { value: number; bad: 'above' | 'below' };
  max?: number;
}

const s = serviceSelector;
const w = '$__rate_interval';
const t = figures.targets;

const panels: PanelSpec[] = [
  {
    title: 'Request rate',
    description: 'HTTP requests per second by route template',
    unit: 'reqps',
    queries: [{ expr: `sum by (route) (rate(http_requests_total{${s}}[${w}]))`, legend: '{{route}}' }],
  },
  {
    title: 'Latency p50 / p99',
    description: 'HTTP request latency quantiles over every route',
    unit: 's',
    queries: [
      { expr: `histogram_quantile(0.5, sum by (le) (rate(http_request_duration_seconds_bucket{${s}}[${w}])))`, legend: 'p50' },
      { expr: `histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{${s}}[${w}])))`, legend: 'p99' },
      {
        expr: `histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{${s},route=~"${PREDICT_ROUTES}"}[${w}])))`,
        legend: 'p99 predictions',
      },
    ],
    threshold: { value: platformTargets.predictP99Seconds, bad: 'above' },
  },
  {
    title: 'Errors',
    description: "5xx share of responses, and error responses per second by the service's error code",
    unit: 'short',
    queries: [
      { expr: `sum(rate(http_requests_total{${s},status_code=~"5.."}[${w}])) / sum(rate(http_requests_total{${s}}[${w}]))`, legend: '5xx ratio' },
      { expr: `sum by (code) (rate(http_errors_total{${s}}[${w}]))`, legend: '{{code}}' },
    ],
  },
  {
    title: 'Cache hit ratio',
    description: `Hits / lookups; the specification asks more than ${t.cacheHitRatio}`,
    unit: 'percentunit',
    queries: [
      { expr: `sum(rate(cache_requests_total{${s},result="hit"}[${w}])) / sum(rate(cache_requests_total{${s}}[${w}]))`, legend: 'hit ratio' },
      { expr: `avg(cache_hit_ratio{${s}})`, legend: 'last 5 min (service gauge)' },
    ],
    threshold: { value: t.cacheHitRatio, bad: 'below' },
    max: 1,
  },
  {
    title: 'Inference latency p99',
    description: 'One ONNX run (all rows of a request), by model',
    unit: 's',
    queries: [{ expr: `histogram_quantile(0.99, sum by (le, model) (rate(model_inference_duration_seconds_bucket{${s}}[${w}])))`, legend: '{{model}}' }],
  },
  {
    title: 'Predictions',
    description: 'Predicted rows per second by model, version and outcome',
    unit: 'short',
    queries: [{ expr: `sum by (model, version, outcome) (rate(model_predictions_total{${s}}[${w}]))`, legend: '{{model}}@{{version}} {{outcome}}' }],
  },
  {
    title: 'CPU of limit',
    description: `CPU used as a share of the container's limit; the specification asks under ${t.cpuOfLimit}`,
    unit: 'percentunit',
    queries: [{ expr: `max by (pod) (container_cpu_usage_ratio{${s}})`, legend: '{{pod}}' }],
    threshold: { value: t.cpuOfLimit, bad: 'above' },
    max: 1,
  },
  {
    title: 'Memory of limit',
    description: `Memory in use as a share of the container's limit; the specification asks under ${t.memoryOfLimit}`,
    unit: 'percentunit',
    queries: [{ expr: `max by (pod) (container_memory_usage_ratio{${s}})`, legend: '{{pod}}' }],
    threshold: { value: t.memoryOfLimit, bad: 'above' },
    max: 1,
  },
  {
    title: 'Model load time',
    description: `Mean time to load a version into every inference worker; the specification asks under ${t.modelLoadSeconds} s`,
    unit: 's',
    queries: [
      {
        expr: `sum by (model, version) (increase(model_load_duration_seconds_sum{${s}}[1h])) / sum by (model, version) (increase(model_load_duration_seconds_count{${s}}[1h]))`,
        legend: '{{model}}@{{version}}',
      },
    ],
    threshold: { value: t.modelLoadSeconds, bad: 'above' },
  },
];

/** Every PromQL expression of the dashboard. */
export function dashboardQueries(): string[] {
  return panels.flatMap((p) => p.queries.map((q) => q.expr));
}

export const DASHBOARD_UID = 'analytics-api';

/** The dashboard's JSON model: panels two per row, a Prometheus data source variable. */
export function dashboard(): Record<string, unknown> {
  // Grafana's own variable syntax, not a template literal.
  const datasource = { type: 'prometheus', uid: '$' + '{datasource}' };
  return {
    uid: DASHBOARD_UID,
    title: 'Analytics API',
    description: `The ${SERVICE_NAME} inference service: traffic, latency, errors, cache, models, resources`,
    tags: ['analytics', 'onnx'],
    editable: true,
    schemaVersion: 39,
    refresh: '30s',
    time: { from: 'now-3h', to: 'now' },
    templating: {
      list: [{ name: 'datasource', label: 'Data source', type: 'datasource', query: 'prometheus', current: {}, hide: 0 }],
    },
    panels: panels.map((p, i) => ({
      id: i + 1,
      type: 'timeseries',
      title: p.title,
      description: p.description,
      datasource,
      gridPos: { x: (i % 2) * 12, y: Math.floor(i / 2) * 8, w: 12, h: 8 },
      fieldConfig: {
        defaults: {
          unit: p.unit,
          min: 0,
          ...(p.max !== undefined ? { max: p.max } : {}),
          ...(p.threshold !== undefined
            ? {
                thresholds: {
                  mode: 'absolute',
                  steps:
                    p.threshold.bad === 'above'
                      ? [
                          { color: 'green', value: null },
                          { color: 'red', value: p.threshold.value },
                        ]
                      : [
                          { color: 'red', value: null },
                          { color: 'green', value: p.threshold.value },
                        ],
                },
                custom: { thresholdsStyle: { mode: 'line' } },
              }
            : {}),
        },
        overrides: [],
      },
      options: { legend: { displayMode: 'list', placement: 'bottom' }, tooltip: { mode: 'multi' } },
      targets: p.queries.map((q, j) => ({ refId: String.fromCharCode(65 + j), datasource, expr: q.expr, legendFormat: q.legend })),
    })),
  };
}
