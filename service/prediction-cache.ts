import { createHash } from 'node:crypto';
import { BoundedMap } from './bounded-map.ts';
import type { Prediction } from './onnx-model.ts';

// Cached answers, keyed by model, resolved version and the canonical feature vector, so a new
// version never serves an old answer. Identical concurrent misses share one computation.

export interface CacheBackend {
  readonly kind: 'memory' | 'redis';
  get(key: string): Promise<Prediction | undefined>;
  set(key: string, value: Prediction, ttlSeconds: number): Promise<void>;
  /** Drops every entry of a model. */
  purgeModel(model: string): Promise<void>;
  state(): { backend: 'memory' | 'redis'; status: 'ok' | 'degraded'; detail?: string };
  close(): Promise<void>;
}

/**
 * Cache key: model and version in clear (for purges), then the features in the model's own order.
 * Numbers print one way whatever their spelling in the request (1, 1.0, 1e0). Long rows are
 * hashed to keep keys small; short ones are used as they are (hashing is a third of a hit's cost).
 */
export function cacheKey(model: string, version: string, row: number[]): string {
  const values = row.join(',');
  return `pred:${model}:${version}:${values.length <= 160 ? values : createHash('sha256').update(values).digest('base64url')}`;
}

export const modelPrefix = (model: string) => `pred:${model}:`;

export class MemoryCache implements CacheBackend {
  readonly kind = 'memory' as const;
  private readonly entries: BoundedMap<{ value: Prediction; expires: number }>;

  constructor(maxEntries = 100_000) {
    this.entries = new BoundedMap(maxEntries);
  }

  async get(key: string): Promise<Prediction | undefined> {
    const e = this.entries.get(key);
    if (!e) return undefined;
    if (e.expires <= Date.now()) {
      this.entries.delete(key);
      return undefined;
    }
    return e.value;
  }

  async set(key: string, value: Prediction, ttlSeconds: number): Promise<void> {
    // When full, the oldest written entry goes.
    this.entries.set(key, { value, expires: Date.now() + ttlSeconds * 1000 });
  }

  async purgeModel(model: string): Promise<void> {
    const prefix = modelPrefix(model);
    for (const key of [...this.entries.keys()]) if (key.startsWith(prefix)) this.entries.delete(key);
  }

  size(): number {
    return this.entries.size;
  }

  state() {
    return { backend: 'memory' as const, status: 'ok' as const };
  }

  async close(): Promise<void> {
    this.entries.clear();
  }
}

/** Runs fn once per key at a time: concurrent callers with the same key share its promise. */
export class SingleFlight<T> {
  private readonly inflight = new Map<string, Promise<T>>();

  run(key: string, fn: () => Promise<T>): Promise<T> {
    const running = this.inflight.get(key);
    if (running) return running;
    const p = fn().finally(() => this.inflight.delete(key));
    this.inflight.set(key, p);
    return p;
  }
}
