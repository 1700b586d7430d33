import { ADD, DELETE, ERROR, ListWatch, UPDATE, Watch } from '@kubernetes/client-node';
import type { KubeConfig, KubernetesListObject, KubernetesObject } from '@kubernetes/client-node';
import { describeError, statusCode } from '../../contract/kubernetes-errors.ts';
import type { Logger } from './log.ts';
import type { OperatorMetrics } from './metrics.ts';

// An informer (client-node's ListWatch: list, then watch from the list's resourceVersion, keeping a
// cache) that never stays down. ListWatch itself relists after 410 Gone and reconnects after a
// watch timeout or a clean close; after any other error (connection refused while the API server
// restarts, a reset connection, 5xx) it stops, so this wrapper starts it again with a capped
// backoff. Handlers get the previous object too, for predicates such as "generation changed".
// Written here: no npm package wraps client-node 2.x's ListWatch this way.

export interface InformerHandlers<T> {
  add?(obj: T): void;
  update?(obj: T, old: T | undefined): void;
  delete?(obj: T): void;
}

/** What an informer caches: any object with metadata (ModelVersion keeps timestamps as strings). */
export interface Cached {
  metadata?: { name?: string; namespace?: string; resourceVersion?: string };
}

export interface InformerOptions<T extends Cached> {
  kc: KubeConfig;
  /** For logs and metrics, e.g. "modelversions". */
  resource: string;
  /** The collection's URL path, e.g. /apis/batch/v1/namespaces/analytics/jobs. */
  path: string;
  list: () => Promise<{ metadata?: { resourceVersion?: string }; items: T[] }>;
  labelSelector?: string;
  fieldSelector?: string;
  log: Logger;
  metrics?: OperatorMetrics;
  restartBaseMs?: number;
  restartMaxMs?: number;
}

const keyOf = (o: Cached) => `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;

export class Informer<T extends Cached> {
  readonly resource: string;
  private readonly lw: ListWatch<KubernetesObject>;
  private readonly log: Logger;
  private readonly handlers: InformerHandlers<T>[] = [];
  private readonly previous = new Map<string, T>();
  private readonly opts: InformerOptions<T>;
  private syncedOnce = false;
  private syncWaiters: Array<() => void> = [];
  private stopped = true;
  private restartDelay: number;
  private restartTimer?: NodeJS.Timeout;

  constructor(opts: InformerOptions<T>) {
    this.opts = opts;
    this.resource = opts.resource;
    this.log = opts.log.child('informer', { resource: opts.resource });
    this.restartDelay = opts.restartBaseMs ?? 250;
    const list = async () => {
      const result = await opts.list();
      opts.metrics?.relists.inc({ resource: opts.resource });
      this.restartDelay = opts.restartBaseMs ?? 250;
      // ListWatch fills its cache from this list synchronously once it resumes: after that, synced.
      setImmediate(() => this.markSynced());
      return result;
    };
    this.lw = new ListWatch<KubernetesObject>(
      opts.path,
      new Watch(opts.kc),
      list as () => Promise<KubernetesListObject<KubernetesObject>>,
      false,
      opts.labelSelector,
      opts.fieldSelector,
    );
    this.lw.on(ADD, (o) => {
      const obj = o as T;
      this.previous.set(keyOf(obj), obj);
      for (const h of this.handlers) h.add?.(obj);
    });
    this.lw.on(UPDATE, (o) => {
      const obj = o as T;
      const old = this.previous.get(keyOf(obj));
      this.previous.set(keyOf(obj), obj);
      for (const h of this.handlers) h.update?.(obj, old);
    });
    this.lw.on(DELETE, (o) => {
      const obj = o as T;
      this.previous.delete(keyOf(obj));
      for (const h of this.handlers) h.delete?.(obj);
    });
    this.lw.on(ERROR, (err: unknown) => this.restart(err));
  }

  on(handlers: InformerHandlers<T>): void {
    this.handlers.push(handlers);
  }

  private markSynced(): void {
    if (this.syncedOnce) return;
    this.syncedOnce = true;
    for (const w of this.syncWaiters.splice(0)) w();
  }

  private restart(err: unknown): void {
    if (this.stopped) return;
    const code = statusCode(err);
    this.opts.metrics?.watchRestarts.inc({ resource: this.resource });
    const delay = this.restartDelay;
    this.restartDelay = Math.min(this.restartDelay * 2, this.opts.restartMaxMs ?? 5_000);
    (code === 403 || code === 401 ? this.log.error : this.log.info)('watch ended; starting it again', { error: describeError(err), delayMs: delay });
    clearTimeout(this.restartTimer);
    this.restartTimer = setTimeout(() => {
      if (this.stopped) return;
      this.lw.start().catch((e: unknown) => this.restart(e));
    }, delay);
  }

  /** Starts listing and watching; resolves after the first full list is in the cache. */
  async start(): Promise<void> {
    this.stopped = false;
    this.lw.start().catch((e: unknown) => this.restart(e));
    await this.waitForSync();
  }

  waitForSync(): Promise<void> {
    if (this.syncedOnce) return Promise.resolve();
    return new Promise((resolve) => this.syncWaiters.push(resolve));
  }

  hasSynced(): boolean {
    return this.syncedOnce;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.restartTimer);
    await this.lw.stop();
  }

  get(name: string, namespace?: string): T | undefined {
    return this.lw.get(name, namespace) as T | undefined;
  }

  list(namespace?: string): T[] {
    return [...this.lw.list(namespace)] as T[];
  }
}
