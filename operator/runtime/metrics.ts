import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { WorkQueue, WorkqueueMetrics } from './workqueue.ts';

// The operator's metrics under controller-runtime's and client-go's names, so dashboards and alerts
// written for Go operators (kubebuilder's, KServe's) read these too.

const LATENCY_BUCKETS = [
  0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 0.9, 1, 1.25, 1.5, 1.75, 2, 2.5, 3, 3.5, 4, 4.5, 5, 6, 7, 8, 9, 10,
  15, 20, 25, 30, 40, 50, 60,
];
const QUEUE_BUCKETS = [1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 0.01, 0.1, 1, 10, 100, 1000];

export type ReconcileResult = 'success' | 'error' | 'requeue_after';

export class OperatorMetrics {
  readonly registry = new Registry();

  readonly reconcileTotal = new Counter({
    name: 'controller_runtime_reconcile_total',
    help: 'Total number of reconciliations per controller',
    labelNames: ['controller', 'result'] as const,
    registers: [this.registry],
  });

  readonly reconcileErrors = new Counter({
    name: 'controller_runtime_reconcile_errors_total',
    help: 'Total number of reconciliation errors per controller',
    labelNames: ['controller'] as const,
    registers: [this.registry],
  });

  readonly reconcileTime = new Histogram({
    name: 'controller_runtime_reconcile_time_seconds',
    help: 'Length of time per reconciliation per controller',
    labelNames: ['controller'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });

  readonly maxConcurrentReconciles = new Gauge({
    name: 'controller_runtime_max_concurrent_reconciles',
    help: 'Maximum number of concurrent reconciles per controller',
    labelNames: ['controller'] as const,
    registers: [this.registry],
  });

  readonly activeWorkers = new Gauge({
    name: 'controller_runtime_active_workers',
    help: 'Number of currently used workers per controller',
    labelNames: ['controller'] as const,
    registers: [this.registry],
  });

  readonly depth = new Gauge({
    name: 'workqueue_depth',
    help: 'Current depth of workqueue',
    labelNames: ['name', 'controller'] as const,
    registers: [this.registry],
  });
  readonly adds = new Counter({
    name: 'workqueue_adds_total',
    help: 'Total number of adds handled by workqueue',
    labelNames: ['name', 'controller'] as const,
    registers: [this.registry],
  });
  readonly retries = new Counter({
    name: 'workqueue_retries_total',
    help: 'Total number of retries handled by workqueue',
    labelNames: ['name', 'controller'] as const,
    registers: [this.registry],
  });
  readonly queueDuration = new Histogram({
    name: 'workqueue_queue_duration_seconds',
    help: 'How long in seconds an item stays in workqueue before being requested',
    labelNames: ['name', 'controller'] as const,
    buckets: QUEUE_BUCKETS,
    registers: [this.registry],
  });
  readonly workDuration = new Histogram({
    name: 'workqueue_work_duration_seconds',
    help: 'How long in seconds processing an item from workqueue takes',
    labelNames: ['name', 'controller'] as const,
    buckets: QUEUE_BUCKETS,
    registers: [this.registry],
  });

  private readonly queues = new Map<string, WorkQueue>();

  readonly unfinishedWork = new Gauge({
    name: 'workqueue_unfinished_work_seconds',
    help: "How many seconds of work has been done that is in progress and hasn't been observed by work_duration",
    labelNames: ['name', 'controller'] as const,
    registers: [this.registry],
    collect: () => {
      for (const [name, q] of this.queues) this.unfinishedWork.set({ name, controller: name }, q.unfinishedWorkSeconds());
    },
  });

  readonly longestRunning = new Gauge({
    name: 'workqueue_longest_running_processor_seconds',
    help: 'How many seconds has the longest running processor for workqueue been running',
    labelNames: ['name', 'controller'] as const,
    registers: [this.registry],
    collect: () => {
      for (const [name, q] of this.queues) this.longestRunning.set({ name, controller: name }, q.longestRunningProcessorSeconds());
    },
  });

  readonly leader = new Gauge({
    name: 'leader_election_master_status',
    help: 'Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, 1 indicates master',
    labelNames: ['name'] as const,
    registers: [this.registry],
  });

  readonly watchRestarts = new Counter({
    name: 'analytics_operator_watch_restarts_total',
    help: 'Watches that ended with an error and were started again, by resource',
    labelNames: ['resource'] as const,
    registers: [this.registry],
  });

  readonly relists = new Counter({
    name: 'analytics_operator_informer_lists_total',
    help: 'Full lists by the informers (the first one, and each after a 410 Gone or a restart), by resource',
    labelNames: ['resource'] as const,
    registers: [this.registry],
  });

  private phases: () => Map<string, number> = () => new Map();

  readonly modelVersionFailures = new Counter({
    name: 'analytics_operator_model_version_failures_total',
    help: 'ModelVersions that could not import, by reason (ImportFailed, SourceNotFound, DuplicateVersion, InvalidSpec, ImportPodFailing)',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  readonly rollouts = new Counter({
    name: 'analytics_operator_rollouts_total',
    help: 'Canary and shadow rollouts (spec.rollout) finished, by result (succeeded, rolled_back)',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });

  readonly modelVersions = new Gauge({
    name: 'analytics_operator_model_versions',
    help: 'ModelVersions in the informer cache by status phase ("" before the first status)',
    labelNames: ['phase'] as const,
    registers: [this.registry],
    collect: () => {
      // Phases no object is in any more go (a "" counted before the first status stayed at 1).
      this.modelVersions.reset();
      for (const [phase, n] of this.phases()) this.modelVersions.set({ phase }, n);
    },
  });

  /** Where the phase gauge counts from (the ModelVersion cache), read at each scrape. */
  countPhases(fn: () => Map<string, number>): void {
    this.phases = fn;
  }

  constructor() {
    collectDefaultMetrics({ register: this.registry });
    // Gauges named like counters (prom-client's `_total`): promtool refuses them.
    for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) this.registry.removeSingleMetric(name);
  }

  /** The hooks a work queue named `name` reports through. */
  workqueue(name: string): WorkqueueMetrics {
    const labels = { name, controller: name };
    this.depth.set(labels, 0);
    this.adds.inc(labels, 0);
    this.retries.inc(labels, 0);
    return {
      adds: () => this.adds.inc(labels),
      depth: (n) => this.depth.set(labels, n),
      queueLatency: (s) => this.queueDuration.observe(labels, s),
      workDuration: (s) => this.workDuration.observe(labels, s),
      retries: () => this.retries.inc(labels),
    };
  }

  trackQueue(queue: WorkQueue): void {
    this.queues.set(queue.name, queue);
  }

  /** Zero series for a controller, so dashboards see it before its first reconcile. */
  registerController(controller: string, workers: number): void {
    this.maxConcurrentReconciles.set({ controller }, workers);
    this.activeWorkers.set({ controller }, 0);
    this.reconcileErrors.inc({ controller }, 0);
    for (const result of ['success', 'error', 'requeue_after'] as const) this.reconcileTotal.inc({ controller, result }, 0);
  }
}
