import { describeError, isConflict } from '../../contract/kubernetes-errors.ts';
import type { Cached, Informer } from './informer.ts';
import type { Logger } from './log.ts';
import type { OperatorMetrics, ReconcileResult } from './metrics.ts';
import { WorkQueue, defaultControllerRateLimiter } from './workqueue.ts';
import type { RateLimiter } from './workqueue.ts';

// A controller as controller-runtime runs one: a work queue of keys fed by informer events (each
// controller declares what wakes it with watch(), as kubebuilder's SetupWithManager does), a fixed
// number of workers, and a reconcile per key. The result decides what happens to the key:
//   returns nothing      → forget its backoff (success)
//   { requeueAfterMs }   → look again after that long (forget the backoff)
//   throws               → again after its backoff (error)

export interface Result {
  requeueAfterMs?: number;
}

export type Reconcile = (key: string) => Promise<Result | undefined>;

/** The keys an informer event wakes (none, one or several): a map function with its predicates. */
export type WatchMap<T> = (obj: T, old: T | undefined, event: 'add' | 'update' | 'delete') => Iterable<string> | string | undefined;

export interface ControllerOptions {
  name: string;
  workers: number;
  reconcile: Reconcile;
  log: Logger;
  metrics: OperatorMetrics;
  rateLimiter?: RateLimiter;
}

export class Controller {
  readonly name: string;
  readonly queue: WorkQueue;
  private readonly o: ControllerOptions;
  private readonly log: Logger;
  private running?: Promise<void>[];

  constructor(opts: ControllerOptions) {
    this.o = opts;
    this.name = opts.name;
    this.log = opts.log.child(opts.name);
    this.queue = new WorkQueue(opts.name, opts.rateLimiter ?? defaultControllerRateLimiter(), opts.metrics.workqueue(opts.name));
    opts.metrics.trackQueue(this.queue);
    opts.metrics.registerController(opts.name, opts.workers);
  }

  enqueue(key: string): void {
    this.queue.add(key);
  }

  /** Feeds the queue from an informer's events, through `map`. */
  watch<T extends Cached>(informer: Informer<T>, map: WatchMap<T>): this {
    const enqueue = (keys: Iterable<string> | string | undefined) => {
      if (typeof keys === 'string') this.enqueue(keys);
      else for (const key of keys ?? []) this.enqueue(key);
    };
    informer.on({
      add: (obj) => enqueue(map(obj, undefined, 'add')),
      update: (obj, old) => enqueue(map(obj, old, 'update')),
      delete: (obj) => enqueue(map(obj, undefined, 'delete')),
    });
    return this;
  }

  /** Starts the workers (once); keys queued before are handled now. */
  start(): void {
    if (this.running) return;
    this.log.info('starting workers', { workers: this.o.workers });
    this.running = Array.from({ length: this.o.workers }, () => this.worker());
  }

  isStarted(): boolean {
    return this.running !== undefined;
  }

  private async worker(): Promise<void> {
    for (;;) {
      const key = await this.queue.get();
      if (key === undefined) return;
      await this.process(key);
    }
  }

  private async process(key: string): Promise<void> {
    const { metrics } = this.o;
    const controller = this.name;
    const started = performance.now();
    metrics.activeWorkers.inc({ controller });
    let result: ReconcileResult = 'success';
    try {
      const r = await this.o.reconcile(key);
      if (r?.requeueAfterMs !== undefined) {
        this.queue.forget(key);
        this.queue.addAfter(key, r.requeueAfterMs);
        result = 'requeue_after';
      } else {
        this.queue.forget(key);
      }
    } catch (err) {
      result = 'error';
      metrics.reconcileErrors.inc({ controller });
      this.queue.addRateLimited(key);
      // A conflict only means the cache was behind: the next try reads the newer object.
      (isConflict(err) ? this.log.debug : this.log.warn)('reconcile failed; retrying', {
        key,
        error: describeError(err),
        retries: this.queue.numRequeues(key),
      });
    } finally {
      this.queue.done(key);
      metrics.activeWorkers.dec({ controller });
      metrics.reconcileTotal.inc({ controller, result });
      metrics.reconcileTime.observe({ controller }, (performance.now() - started) / 1000);
    }
  }

  /** Stops handing out keys and waits for the reconciles in progress. */
  async stop(): Promise<void> {
    await this.queue.shutDown();
    if (this.running) await Promise.all(this.running);
  }
}
