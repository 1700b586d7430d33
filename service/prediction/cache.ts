import { createHash } from 'node:crypto';
import type { Prediction } from '../inference/model-interface.ts';

// Cached answers, keyed by model, resolved version and the canonical feature vector, so a new
// version never serves an old answer. Identical concurrent misses share one computation.
// Backends: memory-cache.ts (no REDIS_URL), redis-cache.ts.

export interface CacheBackend {
  /** What this process holds for the key, without a promise (the in-memory cache, or Redis's in-process tier). */
  peek(key: string): Prediction | undefined;
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

/** Runs fn once per key at a time: concurrent callers with the same key share its promise. */
export class SingleFlight<T> {
  private readonly inflight = new Map<string, Promise<T>>();

  run(key: string, fn: () => Promise<T>): Promise<T> {
    const running = this.inflight.get(key);
    if (running !== undefined) return running;
    const p = fn().finally(() => this.inflight.delete(key));
    this.inflight.set(key, p);
    return p;
  }
}
