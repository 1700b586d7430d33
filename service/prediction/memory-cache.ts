import { LRUCache } from 'lru-cache';
import type { Prediction } from '../inference/model-interface.ts';
import { modelPrefix, type CacheBackend } from './cache.ts';

// The in-process cache (no REDIS_URL): bounded, least recently used entries go first when full,
// each entry expiring after its TTL.
export class MemoryCache implements CacheBackend {
  private readonly entries: LRUCache<string, Prediction>;

  constructor(maxEntries = 100_000) {
    this.entries = new LRUCache({ max: maxEntries });
  }

  peek(key: string): Prediction | undefined {
    return this.entries.get(key);
  }

  async get(key: string): Promise<Prediction | undefined> {
    return this.entries.get(key);
  }

  async set(key: string, value: Prediction, ttlSeconds: number): Promise<void> {
    this.entries.set(key, value, { ttl: ttlSeconds * 1000 });
  }

  async purgeModel(model: string): Promise<void> {
    const prefix = modelPrefix(model);
    for (const key of [...this.entries.keys()]) if (key.startsWith(prefix)) this.entries.delete(key);
  }

  state() {
    return { backend: 'memory' as const, status: 'ok' as const };
  }

  async close(): Promise<void> {
    this.entries.clear();
  }
}
