import { availableParallelism, totalmem } from 'node:os';
import { Counter, Gauge, Histogram, type LabelValues, Registry, collectDefaultMetrics } from 'prom-client';
import { cgroupReader, type CgroupReader } from './cgroup.ts';
import { RecentRatio } from './recent-ratio.ts';

// Every metric the service exports, named once. Prometheus conventions: base units (seconds,
// bytes), `_total` counters, route templates as labels, never ids.
/** What serves one model, as the registry reports it. */
interface ServingReport {
  name: string;
  version: string;
  loaded: boolean;
  canary?: { version: string; weight: number; mode: 'canary' | 'shadow' };
}

/**
 * A counter whose label children count in plain numbers, handed to prom-client whenever the
 * counter is read (a scrape, or get()). prom-client's own children validate and hash their labels
 * at every inc(), about 0.4 µs; these children are for the paths every request takes.
 */
class HotCounter<L extends string> extends Counter<L> {
  private readonly hot: Array<{ labels: LabelValues<L>; n: number }> = [];

  /** A child for `labels` whose inc() is an addition. */
  hotChild(labels: LabelValues<L>): { inc(n?: number): void } {
    const child = {
      labels,
      n: 0,
      inc(n = 1) {
        child.n += n;
      },
    };
    this.hot.push(child);
    return child;
  }

  override async get() {
    for (const c of this.hot)
      if (c.n > 0) {
        this.inc(c.labels, c.n);
        c.n = 0;
      }
    return super.get();
  }
}

export class ServiceMetrics {
  readonly registry = new Registry();

  readonly httpDuration = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'HTTP request latency by method, route template and status code',
    labelNames: ['method', 'route', 'status_code'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });

  readonly httpRequests = new HotCounter({
    name: 'http_requests_total',
    help: 'HTTP requests by method, route template and status code',
    labelNames: ['method', 'route', 'status_code'] as const,
    registers: [this.registry],
  });

  /** The Open Inference Protocol over gRPC, named as grpc-ecosystem's go-grpc-prometheus names them. */
  readonly grpcDuration = new Histogram({
    name: 'grpc_server_handling_seconds',
    help: 'gRPC call latency by service and method, until the answer (or error) is sent',
    labelNames: ['grpc_type', 'grpc_service', 'grpc_method'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });

  readonly grpcHandled = new Counter({
    name: 'grpc_server_handled_total',
    help: 'gRPC calls completed, by service, method and status code',
    labelNames: ['grpc_type', 'grpc_service', 'grpc_method', 'grpc_code'] as const,
    registers: [this.registry],
  });

  readonly errors = new Counter({
    name: 'http_errors_total',
    help: "Error answers (HTTP and gRPC) by the service's error code",
    labelNames: ['code'] as const,
    registers: [this.registry],
  });

  readonly rateLimited = new Counter({
    name: 'rate_limit_rejections_total',
    help: 'Requests refused with 429 (gRPC: RESOURCE_EXHAUSTED), by route template (gRPC: the method path)',
    labelNames: ['route'] as const,
    registers: [this.registry],
  });

  readonly inferenceDuration = new Histogram({
    name: 'model_inference_duration_seconds',
    help: 'Time of one ONNX run (all rows of a request), by model and version',
    labelNames: ['model', 'version'] as const,
    buckets: [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    registers: [this.registry],
  });

  readonly batchSize = new Histogram({
    name: 'model_batch_size',
    help: 'Rows per ONNX run after dynamic batching, by model and version',
    labelNames: ['model', 'version'] as const,
    buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024],
    registers: [this.registry],
  });

  readonly predictions = new HotCounter({
    name: 'model_predictions_total',
    help: 'Rows answered by model, version and outcome (success, error); answers from the cache count as successes of the version they came from',
    labelNames: ['model', 'version', 'outcome'] as const,
    registers: [this.registry],
  });

  readonly loadDuration = new Histogram({
    name: 'model_load_duration_seconds',
    help: 'Time to load a model version into every inference worker',
    labelNames: ['model', 'version'] as const,
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30],
    registers: [this.registry],
  });

  readonly modelsLoaded = new Gauge({
    name: 'models_loaded',
    help: 'Model versions loaded in the inference workers',
    registers: [this.registry],
    aggregator: 'max',
  });

  private servingSource: () => Iterable<ServingReport> = () => [];

  readonly servingInfo = new Gauge({
    name: 'model_serving_info',
    help: 'The version each model serves: 1 when it is loaded and answers, 0 while it is the production version but not loaded',
    labelNames: ['model', 'version'] as const,
    registers: [this.registry],
    aggregator: 'min',
    collect: () => {
      this.servingInfo.reset();
      for (const m of this.servingSource()) this.servingInfo.set({ model: m.name, version: m.version }, m.loaded ? 1 : 0);
    },
  });

  readonly trafficWeight = new Gauge({
    name: 'model_traffic_weight',
    help: "Percent of each model's traffic each version answers (a canary's share; a shadow gets a copy and counts 0)",
    labelNames: ['model', 'version'] as const,
    registers: [this.registry],
    aggregator: 'first',
    collect: () => {
      this.trafficWeight.reset();
      for (const m of this.servingSource()) {
        const canary = m.canary?.mode === 'canary' ? m.canary.weight : 0;
        this.trafficWeight.set({ model: m.name, version: m.version }, 100 - canary);
        if (m.canary) this.trafficWeight.set({ model: m.name, version: m.canary.version }, canary);
      }
    },
  });

  /** Where model_serving_info and model_traffic_weight read which versions serve each model, at every scrape (the model registry). */
  reportServing(source: () => Iterable<ServingReport>): void {
    this.servingSource = source;
  }

  readonly cacheRequests = new HotCounter({
    name: 'cache_requests_total',
    help: 'Prediction cache lookups by model and result (hit, miss, error)',
    labelNames: ['model', 'result'] as const,
    registers: [this.registry],
  });

  readonly cacheErrors = new Counter({
    name: 'cache_errors_total',
    help: 'Failed cache operations (get, set, purge); predictions go on without the cache',
    labelNames: ['operation'] as const,
    registers: [this.registry],
  });

  private readonly recentHits = new RecentRatio(300, 30);

  readonly cacheHitRatio = new Gauge({
    name: 'cache_hit_ratio',
    help: 'Cache hits / lookups over the last 5 minutes (the specification asks > 0.8)',
    registers: [this.registry],
    aggregator: 'average',
    collect: () => {
      const v = this.recentHits.value();
      if (!Number.isNaN(v)) this.cacheHitRatio.set(v);
    },
  });

  readonly feedback = new Counter({
    name: 'model_feedback_total',
    help: 'Ground-truth feedback by model, version and outcome (correct, incorrect for classifiers; observed for regressors)',
    labelNames: ['model', 'version', 'outcome'] as const,
    registers: [this.registry],
  });

  readonly accuracy = new Gauge({
    name: 'model_accuracy_ratio',
    help: 'Classifier accuracy from ground-truth feedback, by model and version',
    labelNames: ['model', 'version'] as const,
    registers: [this.registry],
    aggregator: 'average',
  });

  readonly absoluteError = new Histogram({
    name: 'model_absolute_error',
    help: "Regressor |actual - predicted| from ground-truth feedback, in the target's units; sum/count is the mean absolute error",
    labelNames: ['model', 'version'] as const,
    buckets: [0.01, 0.1, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 1000],
    registers: [this.registry],
  });

  readonly shadowComparisons = new Counter({
    name: 'model_shadow_comparisons_total',
    help: 'Shadow rollouts: copies of requests the shadow version answered, by model, the shadow version and result (agree, disagree, error, skipped)',
    labelNames: ['model', 'version', 'result'] as const,
    registers: [this.registry],
  });

  readonly shadowDifference = new Histogram({
    name: 'model_shadow_absolute_difference',
    help: "Shadow rollouts of regressors: |shadow - stable| per compared answer, in the target's units",
    labelNames: ['model', 'version'] as const,
    buckets: [0.001, 0.01, 0.1, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 1000],
    registers: [this.registry],
  });

  readonly rollouts = new Counter({
    name: 'model_rollouts_total',
    help: 'Standalone rollouts finished, by model, version and result (succeeded, rolled_back, aborted)',
    labelNames: ['model', 'version', 'result'] as const,
    registers: [this.registry],
  });

  readonly backupRuns = new Counter({
    name: 'backup_runs_total',
    help: 'Scheduled backups of the standalone service, by result (success, failure)',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });

  readonly backupLastSuccess = new Gauge({
    name: 'backup_last_success_timestamp_seconds',
    help: 'When the last scheduled backup succeeded (Unix time)',
    registers: [this.registry],
    aggregator: 'max',
  });

  readonly backupLastSize = new Gauge({
    name: 'backup_last_size_bytes',
    help: 'Size of the last successful backup archive',
    registers: [this.registry],
    aggregator: 'max',
  });

  recordBackup(ok: boolean, sizeBytes: number | undefined): void {
    this.backupRuns.inc({ result: ok ? 'success' : 'failure' });
    if (!ok) return;
    this.backupLastSuccess.set(Date.now() / 1000);
    if (sizeBytes !== undefined) this.backupLastSize.set(sizeBytes);
  }

  constructor(cgroup: CgroupReader = cgroupReader()) {
    collectDefaultMetrics({ register: this.registry });
    // prom-client names these gauges with a `_total` suffix, which Prometheus reserves for
    // counters (promtool rejects them); the same numbers stay as nodejs_active_handles etc.
    for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) this.registry.removeSingleMetric(name);
    this.registerResourceGauges(cgroup);
  }

  private readonly httpChildren = new Map<string, { duration: { observe(v: number): void }; count: { inc(): void } }>();

  /** One HTTP answer; label children are kept per (method, route, status) so the hot path skips label hashing. */
  observeHttp(method: string, route: string, status: number, seconds: number): void {
    const key = `${method} ${route} ${status}`;
    let child = this.httpChildren.get(key);
    if (!child) {
      const labels = { method, route, status_code: String(status) };
      child = { duration: this.httpDuration.labels(labels), count: this.httpRequests.hotChild(labels) };
      this.httpChildren.set(key, child);
    }
    child.duration.observe(seconds);
    child.count.inc();
  }

  private readonly cacheChildren = new Map<string, { inc(): void }>();

  recordCacheLookup(model: string, result: 'hit' | 'miss' | 'error'): void {
    const key = `${model} ${result}`;
    let child = this.cacheChildren.get(key);
    if (!child) {
      child = this.cacheRequests.hotChild({ model, result });
      this.cacheChildren.set(key, child);
    }
    child.inc();
    if (result !== 'error') this.recentHits.record(result === 'hit');
  }

  /** The container's CPU time and limits, and memory as a fraction of its limit (the specification: < 0.9, < 0.8). */
  private registerResourceGauges(cgroup: CgroupReader): void {
    const cpuLimit = () => cgroup.cpuLimitCores() ?? availableParallelism();
    const memoryLimit = () => cgroup.memoryLimitBytes() ?? totalmem();
    // Several HTTP workers (http-workers.ts) read the same cgroup: one worker's figure is the
    // container's. Without a cgroup each reads its own process, and the figures add up.
    const perContainer = cgroup.cpuUsageSeconds() !== undefined ? 'first' : 'sum';
    new Gauge({
      name: 'container_cpu_limit_cores',
      help: "CPU limit of the container (cgroup), or the host's cores without one",
      registers: [this.registry],
      aggregator: 'first',
      collect() {
        this.set(cpuLimit());
      },
    });
    new Gauge({
      name: 'container_memory_limit_bytes',
      help: "Memory limit of the container (cgroup), or the host's memory without one",
      registers: [this.registry],
      aggregator: 'first',
      collect() {
        this.set(memoryLimit());
      },
    });
    // A counter, as cAdvisor's CPU seconds: rate() over any window / the limit is the share of
    // the limit, the same whoever scrapes and however often.
    const self = this;
    new Counter({
      name: 'container_cpu_seconds_total',
      help: "CPU time used by the container's cgroup (or this process without one), in seconds",
      registers: [this.registry],
      aggregator: perContainer,
      collect() {
        this.reset();
        this.inc(self.cpuSeconds(cgroup));
      },
    });
    new Gauge({
      name: 'container_memory_usage_ratio',
      help: 'Memory in use as a fraction of the memory limit',
      registers: [this.registry],
      aggregator: perContainer,
      collect() {
        this.set((cgroup.memoryUsageBytes() ?? process.memoryUsage.rss()) / memoryLimit());
      },
    });
  }

  private cpuSeconds(cgroup: CgroupReader): number {
    const usage = cgroup.cpuUsageSeconds();
    if (usage !== undefined) return usage;
    const { user, system } = process.cpuUsage();
    return (user + system) / 1e6;
  }
}
