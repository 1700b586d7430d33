// A rate-limited, de-duplicating work queue with client-go's semantics (k8s.io/client-go/util/workqueue):
// - an item added while it waits is queued once (dirty set);
// - an item added while a worker holds it is queued again only after done(), so one key is never
//   reconciled by two workers at once;
// - addRateLimited delays an item by the larger of its own exponential backoff (base·2^failures,
//   capped) and an overall token bucket (qps, burst), so one failing object backs off alone and many
//   failing objects cannot flood the API server; forget() resets the item's backoff;
// - addAfter keeps the earliest of several pending delays.
// Written here: no npm package gives client-go's queue semantics for client-node 2.x.

export interface RateLimiter {
  /** How long to wait before the item's next try; counts a failure. */
  when(item: string): number;
  forget(item: string): void;
  numRequeues(item: string): number;
}

/** base·2^failures milliseconds, at most max. */
export class ItemExponentialFailureRateLimiter implements RateLimiter {
  private readonly failures = new Map<string, number>();
  private readonly baseMs: number;
  private readonly maxMs: number;

  constructor(baseMs: number, maxMs: number) {
    this.baseMs = baseMs;
    this.maxMs = maxMs;
  }

  when(item: string): number {
    const n = this.failures.get(item) ?? 0;
    this.failures.set(item, n + 1);
    return Math.min(this.baseMs * 2 ** n, this.maxMs);
  }

  forget(item: string): void {
    this.failures.delete(item);
  }

  numRequeues(item: string): number {
    return this.failures.get(item) ?? 0;
  }
}

/** A token bucket over all items: `burst` at once, then `qps` a second. */
export class BucketRateLimiter implements RateLimiter {
  private tokens: number;
  private last = performance.now();
  private readonly qps: number;
  private readonly burst: number;

  constructor(qps: number, burst: number) {
    this.qps = qps;
    this.burst = burst;
    this.tokens = burst;
  }

  when(): number {
    const now = performance.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.qps);
    this.last = now;
    this.tokens -= 1; // a reservation: below zero means waiting for the refill
    return this.tokens >= 0 ? 0 : (-this.tokens / this.qps) * 1000;
  }

  forget(): void {}

  numRequeues(): number {
    return 0;
  }
}

export class MaxOfRateLimiter implements RateLimiter {
  private readonly limiters: RateLimiter[];

  constructor(...limiters: RateLimiter[]) {
    this.limiters = limiters;
  }

  when(item: string): number {
    return Math.max(...this.limiters.map((l) => l.when(item)));
  }

  forget(item: string): void {
    for (const l of this.limiters) l.forget(item);
  }

  numRequeues(item: string): number {
    return Math.max(...this.limiters.map((l) => l.numRequeues(item)));
  }
}

/** controller-runtime's default: 5 ms doubling to 1000 s per item, and 10 qps / 100 burst overall. */
export function defaultControllerRateLimiter(opts: { baseMs?: number; maxMs?: number; qps?: number; burst?: number } = {}): RateLimiter {
  return new MaxOfRateLimiter(
    new ItemExponentialFailureRateLimiter(opts.baseMs ?? 5, opts.maxMs ?? 1_000_000),
    new BucketRateLimiter(opts.qps ?? 10, opts.burst ?? 100),
  );
}

/** Where the queue reports what client-go's workqueue metrics count. */
export interface WorkqueueMetrics {
  adds(): void;
  depth(n: number): void;
  queueLatency(seconds: number): void;
  workDuration(seconds: number): void;
  retries(): void;
}

export class WorkQueue {
  readonly name: string;
  private readonly queue: string[] = [];
  private readonly dirty = new Set<string>();
  private readonly processing = new Map<string, number>();
  private readonly queuedAt = new Map<string, number>();
  private readonly waiting = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  private readonly getters: Array<(item: string | undefined) => void> = [];
  private readonly limiter: RateLimiter;
  private readonly metrics?: WorkqueueMetrics;
  private shutdown = false;
  private drained?: () => void;

  constructor(name: string, limiter: RateLimiter = defaultControllerRateLimiter(), metrics?: WorkqueueMetrics) {
    this.name = name;
    this.limiter = limiter;
    this.metrics = metrics;
  }

  /** Queues the item unless it is queued already; a held item is queued again after done(). */
  add(item: string): void {
    if (this.shutdown || this.dirty.has(item)) return;
    this.metrics?.adds();
    this.dirty.add(item);
    this.queuedAt.set(item, performance.now());
    if (this.processing.has(item)) return;
    this.push(item);
  }

  private push(item: string): void {
    const getter = this.getters.shift();
    if (getter) {
      this.take(item);
      getter(item);
      return;
    }
    this.queue.push(item);
    this.metrics?.depth(this.queue.length);
  }

  private take(item: string): void {
    this.dirty.delete(item);
    const now = performance.now();
    this.processing.set(item, now);
    const at = this.queuedAt.get(item);
    this.queuedAt.delete(item);
    if (at !== undefined) this.metrics?.queueLatency((now - at) / 1000);
  }

  /** The next item, waiting for one; undefined once the queue is shut down. */
  get(): Promise<string | undefined> {
    const item = this.queue.shift();
    if (item !== undefined) {
      this.metrics?.depth(this.queue.length);
      this.take(item);
      return Promise.resolve(item);
    }
    if (this.shutdown) return Promise.resolve(undefined);
    return new Promise((resolve) => this.getters.push(resolve));
  }

  /** A worker finished the item: if it was added meanwhile, it goes back in the queue. */
  done(item: string): void {
    const started = this.processing.get(item);
    this.processing.delete(item);
    if (started !== undefined) this.metrics?.workDuration((performance.now() - started) / 1000);
    if (this.dirty.has(item) && !this.shutdown) this.push(item);
    if (this.shutdown && this.processing.size === 0) this.drained?.();
  }

  /** Adds the item after `ms`; an earlier pending add wins. */
  addAfter(item: string, ms: number): void {
    if (this.shutdown) return;
    if (ms <= 0) {
      this.add(item);
      return;
    }
    const at = performance.now() + ms;
    const pending = this.waiting.get(item);
    if (pending && pending.at <= at) return;
    if (pending) clearTimeout(pending.timer);
    const timer = setTimeout(() => {
      this.waiting.delete(item);
      this.add(item);
    }, ms);
    this.waiting.set(item, { at, timer });
  }

  /** Adds the item after its backoff (a failure counted). */
  addRateLimited(item: string): void {
    this.metrics?.retries();
    this.addAfter(item, this.limiter.when(item));
  }

  /** The item succeeded: its backoff starts over. */
  forget(item: string): void {
    this.limiter.forget(item);
  }

  numRequeues(item: string): number {
    return this.limiter.numRequeues(item);
  }

  len(): number {
    return this.queue.length;
  }

  /** Items waiting for a delay to pass. */
  delayed(): number {
    return this.waiting.size;
  }

  /** Seconds of work in progress and not yet done (client-go's unfinished_work_seconds). */
  unfinishedWorkSeconds(): number {
    const now = performance.now();
    let total = 0;
    for (const started of this.processing.values()) total += (now - started) / 1000;
    return total;
  }

  longestRunningProcessorSeconds(): number {
    const now = performance.now();
    let longest = 0;
    for (const started of this.processing.values()) longest = Math.max(longest, (now - started) / 1000);
    return longest;
  }

  /** Stops handing out items; waiting getters get undefined. Resolves when held items are done. */
  shutDown(): Promise<void> {
    this.shutdown = true;
    for (const { timer } of this.waiting.values()) clearTimeout(timer);
    this.waiting.clear();
    for (const getter of this.getters.splice(0)) getter(undefined);
    this.queue.length = 0;
    this.dirty.clear();
    this.metrics?.depth(0);
    if (this.processing.size === 0) return Promise.resolve();
    return new Promise((resolve) => (this.drained = resolve));
  }
}
