import { figures, platformTargets } from '../../contract/figures.ts';
import { LEADER_LEASE } from '../../contract/names.ts';
import { OPERATOR_NAME, SERVICE_NAME, perNamespace } from '../names.ts';
import { OPERATOR_JOB, PREDICT_ROUTES, SERVICE_JOB } from './alerts.ts';

// The Grafana dashboard (JSON model), shipped as a ConfigMap that Grafana's dashboard sidecar
// picks up by its label (docs/monitoring.md). Nothing in a query is fixed to one install: the
// data source, the namespace, the service's and the operator's scrape jobs and the pods are
// template variables, defaulting to where this copy was installed. Units are Prometheus's base
// units: seconds, bytes, ratios shown as percent, events per second. Lines a user expects to see
// at zero when all is well (5xx, error responses, 429s, request rate) are `or vector(0)` rather
// than "No data". test/infra/dashboard.test.ts runs every query against a real Prometheus
// scraping a real service and operator in another namespace.

type Unit = 's' | 'bytes' | 'percentunit' | 'reqps' | 'ops' | 'short';

interface Query {
  expr: string;
  legend: string;
}

interface PanelSpec {
  title: string;
  description: string;
  unit: Unit;
  queries: Query[];
  /** timeseries (default), a table of an instant query, or a stat of the last value. */
  type?: 'timeseries' | 'table' | 'stat';
  /** A line at the target (the specification's figure, or the platform's), red on the bad side. */
  threshold?: { value: number; bad: 'above' | 'below' };
  max?: number;
  /** Value → text for a stat panel. */
  mappings?: Record<string, { text: string; color: string }>;
  /** Column renames of a table panel. */
  columns?: Record<string, string>;
}

interface RowSpec {
  row: string;
  panels: PanelSpec[];
}

const svc = 'job="$job",namespace="$namespace",pod=~"$pod"';
const op = 'job="$operator_job",namespace="$namespace"';
const w = '$__rate_interval';
const t = figures.targets;
const p = platformTargets;

const rows: RowSpec[] = [
  {
    row: 'Traffic',
    panels: [
      {
        title: 'Request rate',
        description: 'HTTP requests per second by route template, and all of them (0 when idle)',
        unit: 'reqps',
        queries: [
          { expr: `sum by (route) (rate(http_requests_total{${svc}}[${w}]))`, legend: '{{route}}' },
          { expr: `sum(rate(http_requests_total{${svc}}[${w}])) or vector(0)`, legend: 'all routes' },
        ],
      },
      {
        title: 'Latency p50 / p99',
        description: 'HTTP request latency quantiles over every route, and p99 of predictions',
        unit: 's',
        queries: [
          { expr: `histogram_quantile(0.5, sum by (le) (rate(http_request_duration_seconds_bucket{${svc}}[${w}])))`, legend: 'p50' },
          { expr: `histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{${svc}}[${w}])))`, legend: 'p99' },
          {
            expr: `histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{${svc},route=~"${PREDICT_ROUTES}"}[${w}])))`,
            legend: 'p99 predictions',
          },
        ],
        threshold: { value: p.predictP99Seconds, bad: 'above' },
      },
      {
        title: '5xx share of responses',
        description: `Responses with a 5xx status over all responses: 0 when there are none (and when idle); the AnalyticsApiServerErrors alert fires above ${p.serverErrorRatio * 100} %`,
        unit: 'percentunit',
        queries: [
          {
            // The numerator's `or vector(0)` makes "no 5xx series yet" a 0, the denominator's `> 0`
            // keeps an idle service from dividing 0 by 0, and the last `or vector(0)` shows idle as 0.
            expr: `(sum(rate(http_requests_total{${svc},status_code=~"5.."}[${w}])) or vector(0)) / (sum(rate(http_requests_total{${svc}}[${w}])) > 0) or vector(0)`,
            legend: '5xx',
          },
        ],
        threshold: { value: p.serverErrorRatio, bad: 'above' },
        max: 1,
      },
      {
        title: 'Error responses',
        description: "Error responses per second by the service's error code (problem+json `code`), all of them, and 429s from the rate limits",
        unit: 'reqps',
        queries: [
          { expr: `sum by (code) (rate(http_errors_total{${svc}}[${w}]))`, legend: '{{code}}' },
          { expr: `sum(rate(http_errors_total{${svc}}[${w}])) or vector(0)`, legend: 'all errors' },
          { expr: `sum(rate(rate_limit_rejections_total{${svc}}[${w}])) or vector(0)`, legend: '429 rate-limited' },
        ],
      },
    ],
  },
  {
    row: 'Models',
    panels: [
      {
        title: 'Serving version per model',
        description:
          'The version each model serves (model_serving_info), and on how many pods: two rows for one model mean a rollout or a pod that has not switched',
        unit: 'short',
        type: 'table',
        queries: [{ expr: `count by (model, version) (model_serving_info{${svc}} == 1)`, legend: '' }],
        columns: { Value: 'pods' },
      },
      {
        title: 'Models loaded',
        description: 'Model versions loaded in the inference workers, per pod (a pinned older version counts too)',
        unit: 'short',
        queries: [{ expr: `max by (pod) (models_loaded{${svc}})`, legend: '{{pod}}' }],
      },
      {
        title: 'Predictions',
        description: 'Predicted rows per second by model, version and outcome',
        unit: 'ops',
        queries: [{ expr: `sum by (model, version, outcome) (rate(model_predictions_total{${svc}}[${w}]))`, legend: '{{model}}@{{version}} {{outcome}}' }],
      },
      {
        title: 'Traffic share per version',
        description: "Percent of each model's traffic each version answers: 100 for a version that serves alone, a canary's step and the rest during a rollout",
        unit: 'short',
        queries: [{ expr: `max by (model, version) (model_traffic_weight{${svc}})`, legend: '{{model}}@{{version}}' }],
      },
      {
        title: 'Error share per version',
        description: "Failed answers / all answers, by model and version (a canary's error rate beside the stable version's)",
        unit: 'percentunit',
        queries: [
          {
            // 0, not "No data", for a version that never failed (its error series does not exist yet).
            expr:
              `(sum by (model, version) (rate(model_predictions_total{${svc},outcome="error"}[${w}])) or 0 * sum by (model, version) (rate(model_predictions_total{${svc}}[${w}])))\n` +
              `  / sum by (model, version) (rate(model_predictions_total{${svc}}[${w}]))`,
            legend: '{{model}}@{{version}}',
          },
        ],
      },
      {
        title: 'Inference latency p99 per version',
        description: 'One ONNX run (batching wait included), by model and version: a canary beside the stable version',
        unit: 's',
        queries: [
          {
            expr: `histogram_quantile(0.99, sum by (le, model, version) (rate(model_inference_duration_seconds_bucket{${svc}}[${w}])))`,
            legend: '{{model}}@{{version}}',
          },
        ],
      },
      {
        title: 'Inference latency p99',
        description: 'One ONNX run (all rows of a request), by model',
        unit: 's',
        queries: [{ expr: `histogram_quantile(0.99, sum by (le, model) (rate(model_inference_duration_seconds_bucket{${svc}}[${w}])))`, legend: '{{model}}' }],
      },
      {
        // A version is loaded once per pod: its histogram starts with that load counted, so a
        // rate or increase of it is 0; sum / count is that load's time (the mean when reloaded).
        title: 'Model load time',
        description: `Time to load each version into every inference worker, on the slowest pod (the mean when a pod loaded it more than once); the specification asks under ${t.modelLoadSeconds} s`,
        unit: 's',
        queries: [
          {
            expr: `max by (model, version) (model_load_duration_seconds_sum{${svc}} / model_load_duration_seconds_count{${svc}})`,
            legend: '{{model}}@{{version}}',
          },
        ],
        threshold: { value: t.modelLoadSeconds, bad: 'above' },
      },
      {
        title: 'Cache hit ratio',
        description: `Hits / lookups; the specification asks more than ${t.cacheHitRatio * 100} %`,
        unit: 'percentunit',
        queries: [
          { expr: `sum(rate(cache_requests_total{${svc},result="hit"}[${w}])) / sum(rate(cache_requests_total{${svc}}[${w}]))`, legend: 'hit ratio' },
          { expr: `avg(cache_hit_ratio{${svc}})`, legend: 'last 5 min (service gauge)' },
        ],
        threshold: { value: t.cacheHitRatio, bad: 'below' },
        max: 1,
      },
    ],
  },
  {
    row: 'Resources',
    panels: [
      {
        title: 'CPU of limit',
        description: `CPU seconds per second over the container's CPU limit in cores (cgroup); the specification asks under ${t.cpuOfLimit * 100} %`,
        unit: 'percentunit',
        queries: [{ expr: `max by (pod) (rate(container_cpu_seconds_total{${svc}}[${w}]) / container_cpu_limit_cores{${svc}})`, legend: '{{pod}}' }],
        threshold: { value: t.cpuOfLimit, bad: 'above' },
        max: 1,
      },
      {
        title: 'Memory of limit',
        description: `Memory in use over the container's memory limit (cgroup); the specification asks under ${t.memoryOfLimit * 100} %`,
        unit: 'percentunit',
        queries: [{ expr: `max by (pod) (container_memory_usage_ratio{${svc}})`, legend: '{{pod}}' }],
        threshold: { value: t.memoryOfLimit, bad: 'above' },
        max: 1,
      },
      {
        title: 'Memory in use',
        description: "The container's memory in use (cgroup), and its limit",
        unit: 'bytes',
        queries: [
          { expr: `max by (pod) (container_memory_usage_ratio{${svc}} * container_memory_limit_bytes{${svc}})`, legend: '{{pod}}' },
          { expr: `max(container_memory_limit_bytes{${svc}})`, legend: 'limit' },
        ],
      },
    ],
  },
  {
    row: 'Operator',
    panels: [
      {
        title: 'Operator leader',
        description: `Which ${OPERATOR_NAME} replica holds the ${LEADER_LEASE} Lease (1 leader, 0 standby)`,
        unit: 'short',
        type: 'stat',
        queries: [{ expr: `max by (pod) (leader_election_master_status{${op},name="${LEADER_LEASE}"})`, legend: '{{pod}}' }],
        mappings: { '1': { text: 'leader', color: 'green' }, '0': { text: 'standby', color: 'blue' } },
      },
      {
        title: 'ModelVersions by phase',
        description: "ModelVersions in the operator's cache by status phase",
        unit: 'short',
        queries: [{ expr: `max by (phase) (analytics_operator_model_versions{${op}})`, legend: '{{phase}}' }],
      },
      {
        title: 'Reconciles',
        description: 'Reconciles per second by controller and result',
        unit: 'ops',
        queries: [{ expr: `sum by (controller, result) (rate(controller_runtime_reconcile_total{${op}}[${w}]))`, legend: '{{controller}} {{result}}' }],
      },
      {
        title: 'Reconcile errors',
        description: 'Failed reconciles per second by controller (retried with back-off)',
        unit: 'ops',
        queries: [{ expr: `sum by (controller) (rate(controller_runtime_reconcile_errors_total{${op}}[${w}]))`, legend: '{{controller}}' }],
      },
      {
        title: 'Reconcile time p99',
        description: 'The 99th percentile of one reconcile, by controller',
        unit: 's',
        queries: [
          {
            expr: `histogram_quantile(0.99, sum by (le, controller) (rate(controller_runtime_reconcile_time_seconds_bucket{${op}}[${w}])))`,
            legend: '{{controller}}',
          },
        ],
      },
      {
        title: 'Work queue depth',
        description: 'Items waiting in each controller’s work queue (the leader works them; standbys stay at 0)',
        unit: 'short',
        queries: [{ expr: `max by (name) (workqueue_depth{${op}})`, legend: '{{name}}' }],
      },
    ],
  },
];

export interface DashboardPanelQuery {
  panel: string;
  /** A table's query is an instant one; the others are ranges. */
  instant: boolean;
  expr: string;
}

/** Every PromQL expression of the dashboard, with the panel it draws. */
export function dashboardQueries(): DashboardPanelQuery[] {
  return rows.flatMap((r) => r.panels.flatMap((panel) => panel.queries.map((q) => ({ panel: panel.title, instant: panel.type === 'table', expr: q.expr }))));
}

export const DASHBOARD_UID = SERVICE_NAME;

export interface DashboardSettings {
  /** The namespace variable's default: where this copy is installed. */
  namespace: string;
}

/** The dashboard's uid in a namespace (perNamespace: one dashboard per install in Grafana). */
export const dashboardUid = (namespace: string) => perNamespace(DASHBOARD_UID, namespace);

function fieldConfig(p: PanelSpec): Record<string, unknown> {
  const steps = p.threshold
    ? p.threshold.bad === 'above'
      ? [
          { color: 'green', value: null },
          { color: 'red', value: p.threshold.value },
        ]
      : [
          { color: 'red', value: null },
          { color: 'green', value: p.threshold.value },
        ]
    : undefined;
  return {
    defaults: {
      unit: p.unit,
      min: 0,
      ...(p.max !== undefined ? { max: p.max } : {}),
      ...(steps ? { thresholds: { mode: 'absolute', steps }, custom: { thresholdsStyle: { mode: 'line' } } } : {}),
      ...(p.mappings
        ? { mappings: [{ type: 'value', options: Object.fromEntries(Object.entries(p.mappings).map(([v, m], i) => [v, { ...m, index: i }])) }] }
        : {}),
    },
    overrides: [],
  };
}

/** The dashboard's JSON model: a row per part, panels two or three per line, five variables. */
export function dashboard({ namespace }: DashboardSettings): Record<string, unknown> {
  // Grafana's own variable syntax, not template literals.
  const datasource = { type: 'prometheus', uid: '$' + '{datasource}' };
  const queryVariable = (name: string, label: string, query: string, current: string, extra: Record<string, unknown> = {}) => ({
    name,
    label,
    type: 'query',
    datasource,
    definition: query,
    query: { query, refId: `${name}-values` },
    refresh: 2,
    sort: 1,
    hide: 0,
    includeAll: false,
    multi: false,
    current: { selected: true, text: current, value: current },
    options: [],
    ...extra,
  });
  const panels: Record<string, unknown>[] = [];
  let id = 1;
  let y = 0;
  for (const r of rows) {
    panels.push({ id: id++, type: 'row', title: r.row, collapsed: false, gridPos: { x: 0, y, w: 24, h: 1 }, panels: [] });
    y += 1;
    const perLine = r.panels.length % 3 === 0 ? 3 : 2;
    const width = 24 / perLine;
    r.panels.forEach((p, i) => {
      const type = p.type ?? 'timeseries';
      panels.push({
        id: id++,
        type,
        title: p.title,
        description: p.description,
        datasource,
        gridPos: { x: (i % perLine) * width, y: y + Math.floor(i / perLine) * 8, w: width, h: 8 },
        fieldConfig: fieldConfig(p),
        options:
          type === 'stat'
            ? { reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false }, textMode: 'value_and_name', colorMode: 'background', graphMode: 'none' }
            : type === 'table'
              ? { showHeader: true, cellHeight: 'sm' }
              : { legend: { displayMode: 'list', placement: 'bottom' }, tooltip: { mode: 'multi' } },
        ...(type === 'table' ? { transformations: [{ id: 'organize', options: { excludeByName: { Time: true }, renameByName: p.columns ?? {} } }] } : {}),
        targets: p.queries.map((q, j) => ({
          refId: String.fromCharCode(65 + j),
          datasource,
          expr: q.expr,
          legendFormat: q.legend,
          ...(type === 'table' ? { instant: true, range: false, format: 'table' } : { range: true }),
        })),
      });
    });
    y += Math.ceil(r.panels.length / perLine) * 8;
  }
  return {
    uid: dashboardUid(namespace),
    title: `Analytics API (${namespace})`,
    description: `The ${SERVICE_NAME} inference service and its operator: traffic, latency, errors, models, cache, resources, reconciles. Installed from namespace ${namespace}; the variables pick any other.`,
    tags: ['analytics', 'onnx'],
    editable: true,
    schemaVersion: 39,
    refresh: '30s',
    time: { from: 'now-3h', to: 'now' },
    templating: {
      list: [
        { name: 'datasource', label: 'Data source', type: 'datasource', query: 'prometheus', current: {}, hide: 0 },
        queryVariable('namespace', 'Namespace', 'label_values(models_loaded, namespace)', namespace),
        queryVariable('job', 'Service job', 'label_values(models_loaded{namespace="$namespace"}, job)', SERVICE_JOB),
        queryVariable(
          'operator_job',
          'Operator job',
          `label_values(leader_election_master_status{namespace="$namespace",name="${LEADER_LEASE}"}, job)`,
          OPERATOR_JOB,
        ),
        queryVariable('pod', 'Pod', 'label_values(models_loaded{namespace="$namespace",job="$job"}, pod)', 'All', {
          includeAll: true,
          multi: true,
          allValue: '.*',
          current: { selected: true, text: ['All'], value: ['$__all'] },
        }),
      ],
    },
    panels,
  };
}
