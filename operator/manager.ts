import type { KubeConfig, V1ConfigMap, V1CronJob, V1EndpointSlice, V1Job, V1Pod } from '@kubernetes/client-node';
import { GROUP, PHASES, PLURAL, VERSION } from '../contract/model-version.ts';
import type { ModelVersion } from '../contract/model-version.ts';
import type { OperatorConfig } from './config.ts';
import type { Caches, ControllerManager, OperatorContext } from './context.ts';
import { Controller } from './runtime/controller.ts';
import { setupBackupController } from './controllers/backup.ts';
import { setupModelVersionController } from './controllers/model-version.ts';
import { setupRoutingController } from './controllers/routing.ts';
import { EventRecorder } from './runtime/events.ts';
import { Informer, type Cached } from './runtime/informer.ts';
import { KubeClient } from './runtime/kube-client.ts';
import { LeaderElector } from './runtime/leader-election.ts';
import type { Logger } from './runtime/log.ts';
import { OperatorMetrics } from './runtime/metrics.ts';
import { FINALIZER, LEADER_LEASE, OPERATOR_NAME, ROUTING_CONFIGMAP } from '../contract/names.ts';
import { startProbeServer, type ProbeServer } from './runtime/probe-server.ts';
import { ServingPods } from './serving-pods.ts';
import { BACKUP_COMPONENT } from './builders/backup-cronjob.ts';
import { IMPORT_COMPONENT } from './builders/import-job.ts';
import { managedSelector } from './builders/ownership.ts';
import { defaultControllerRateLimiter } from './runtime/workqueue.ts';

// The manager (controller-runtime's): informers for what the controllers read, the three
// controllers (each declares what wakes it, in its own file), leader election deciding when the
// workers run, a periodic resync, and the probe/metrics server. Informers run on standbys too, so a
// replica that takes over starts from a warm cache.

export interface OperatorOptions {
  config: OperatorConfig;
  kc: KubeConfig;
  log: Logger;
  /** Called when leadership is lost (the process should exit, as controller-runtime's does). */
  onLeadershipLost?: () => void;
}

export class Operator {
  readonly metrics = new OperatorMetrics();
  readonly kube: KubeClient;
  readonly ctx: OperatorContext;
  readonly modelVersions: Controller;
  readonly routing: Controller;
  readonly backups: Controller;
  readonly servingPods: ServingPods;
  private readonly o: OperatorOptions;
  private readonly keys = new Map<Controller, () => Iterable<string>>();
  private readonly log: Logger;
  private readonly elector?: LeaderElector;
  private probe?: ProbeServer;
  private resyncTimer?: NodeJS.Timeout;
  private lost = false;
  private stopping?: Promise<void>;

  constructor(opts: OperatorOptions) {
    this.o = opts;
    const { config, kc } = opts;
    this.log = opts.log;
    this.kube = new KubeClient(kc);
    const ns = config.NAMESPACE;
    const informer = <T extends Cached>(
      resource: string,
      path: string,
      list: () => Promise<{ metadata?: { resourceVersion?: string }; items: T[] }>,
      selectors: { labelSelector?: string; fieldSelector?: string } = {},
    ) => new Informer<T>({ kc, resource, path, list, log: this.log, metrics: this.metrics, ...selectors });
    const importSelector = managedSelector(IMPORT_COMPONENT);
    const backupSelector = managedSelector(BACKUP_COMPONENT);
    const routingField = `metadata.name=${ROUTING_CONFIGMAP}`;
    const serviceSelector = `kubernetes.io/service-name=${config.SERVICE_NAME}`;
    const cache: Caches = {
      modelVersions: informer<ModelVersion>(PLURAL, `/apis/${GROUP}/${VERSION}/namespaces/${ns}/${PLURAL}`, () =>
        this.kube.listPlain<ModelVersion>(GROUP, VERSION, PLURAL, ns),
      ),
      importJobs: informer<V1Job>('jobs', `/apis/batch/v1/namespaces/${ns}/jobs`, () => this.kube.listPlain<V1Job>('batch', 'v1', 'jobs', ns, importSelector), {
        labelSelector: importSelector,
      }),
      backupCronJobs: informer<V1CronJob>(
        'cronjobs',
        `/apis/batch/v1/namespaces/${ns}/cronjobs`,
        () => this.kube.listPlain<V1CronJob>('batch', 'v1', 'cronjobs', ns, backupSelector),
        {
          labelSelector: backupSelector,
        },
      ),
      routing: informer<V1ConfigMap>(
        'configmaps',
        `/api/v1/namespaces/${ns}/configmaps`,
        () => this.kube.core.listNamespacedConfigMap({ namespace: ns, fieldSelector: routingField }),
        {
          fieldSelector: routingField,
        },
      ),
      importPods: informer<V1Pod>(
        'pods',
        `/api/v1/namespaces/${ns}/pods`,
        () => this.kube.core.listNamespacedPod({ namespace: ns, labelSelector: importSelector }),
        {
          labelSelector: importSelector,
        },
      ),
      endpointSlices: informer<V1EndpointSlice>(
        'endpointslices',
        `/apis/discovery.k8s.io/v1/namespaces/${ns}/endpointslices`,
        () => this.kube.listPlain<V1EndpointSlice>('discovery.k8s.io', 'v1', 'endpointslices', ns, serviceSelector),
        { labelSelector: serviceSelector },
      ),
    };
    this.servingPods = new ServingPods({ endpointSlices: cache.endpointSlices, log: this.log });
    this.ctx = {
      config,
      kube: this.kube,
      cache,
      events: new EventRecorder(this.kube, OPERATOR_NAME, config.identity, this.log),
      log: this.log,
      metrics: this.metrics,
      servingPods: this.servingPods,
    };
    const rateLimiter = () =>
      defaultControllerRateLimiter({
        baseMs: config.BACKOFF_BASE_MS,
        maxMs: config.BACKOFF_MAX_SECONDS * 1000,
        qps: config.RETRY_QPS,
        burst: config.RETRY_BURST,
      });
    const mgr: ControllerManager = {
      ctx: this.ctx,
      controller: (name, workers, reconcile, keys) => {
        const c = new Controller({ name, workers, reconcile, log: this.log, metrics: this.metrics, rateLimiter: rateLimiter() });
        this.keys.set(c, keys);
        return c;
      },
    };
    this.routing = setupRoutingController(mgr);
    this.modelVersions = setupModelVersionController(mgr);
    this.backups = setupBackupController(mgr);
    this.metrics.countPhases(() => {
      const counts = new Map<string, number>(PHASES.map((p) => [p, 0]));
      for (const mv of cache.modelVersions.list()) {
        const phase = mv.status?.phase ?? '';
        counts.set(phase, (counts.get(phase) ?? 0) + 1);
      }
      return counts;
    });
    if (config.LEADER_ELECT) {
      this.elector = new LeaderElector({
        kube: this.kube,
        namespace: ns,
        name: LEADER_LEASE,
        identity: config.identity,
        leaseDurationMs: config.LEASE_DURATION_SECONDS * 1000,
        renewDeadlineMs: config.RENEW_DEADLINE_SECONDS * 1000,
        retryPeriodMs: config.RETRY_PERIOD_SECONDS * 1000,
        log: this.log,
        metrics: this.metrics,
        onStartedLeading: () => this.lead(),
        onStoppedLeading: () => {
          this.lost = true;
          this.o.onLeadershipLost?.();
        },
      });
    }
  }

  private informers(): Informer<object>[] {
    return Object.values(this.ctx.cache) as Informer<object>[];
  }

  /** Every key of every controller: at start of leadership and on each resync. */
  private enqueueAll(): void {
    for (const [controller, keys] of this.keys) for (const key of keys()) controller.enqueue(key);
  }

  private lead(): void {
    this.enqueueAll();
    this.servingPods.start();
    for (const c of [this.routing, this.modelVersions, this.backups]) c.start();
    this.resyncTimer = setInterval(() => this.enqueueAll(), this.o.config.RESYNC_SECONDS * 1000);
    this.resyncTimer.unref();
  }

  isLeader(): boolean {
    return this.elector ? this.elector.isLeader() : this.modelVersions.isStarted();
  }

  async start(): Promise<void> {
    const { config } = this.o;
    this.probe = await startProbeServer({
      host: config.METRICS_HOST,
      port: config.METRICS_PORT,
      registry: this.metrics.registry,
      healthz: [
        { name: 'ping', ok: () => true },
        { name: 'leader-election', ok: () => !this.lost },
      ],
      readyz: this.informers().map((i) => ({ name: `informer-${i.resource}`, ok: () => i.hasSynced() })),
    });
    this.log.info('starting', {
      namespace: config.NAMESPACE,
      identity: config.identity,
      metricsPort: this.probe.port,
      leaderElection: config.LEADER_ELECT,
      finalizer: FINALIZER,
    });
    await Promise.all(this.informers().map((i) => i.start()));
    if (this.stopping !== undefined) return; // stopped while the caches were filling
    this.log.info('caches synced', { modelVersions: this.ctx.cache.modelVersions.list().length });
    if (this.elector) this.elector.start();
    else this.lead();
  }

  get probePort(): number | undefined {
    return this.probe?.port;
  }

  /** Finishes reconciles in progress, releases the Lease, stops watching. Idempotent. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      clearInterval(this.resyncTimer);
      await Promise.all([this.routing, this.modelVersions, this.backups].map((c) => c.stop()));
      await this.servingPods.stop();
      await this.elector?.stop();
      await Promise.all(this.informers().map((i) => i.stop()));
      await this.ctx.events.flush();
      await this.probe?.close();
      this.log.info('stopped');
    })();
    return this.stopping;
  }
}
