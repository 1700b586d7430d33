import { LRUCache } from 'lru-cache';
import type { Prediction } from '../inference/model-interface.ts';
import type { RedisConnection } from '../redis-client.ts';
import { modelPrefix, type CacheBackend } from './cache.ts';

// Predictions cached in Redis with a TTL (SET ... EX), through the connection's circuit breaker.
// Errors propagate to the Predictor, which counts them and carries on without the cache (fail-open).
//
// In front of Redis, a small in-process tier holds the answers this replica read or wrote in the
// last few seconds: the hottest keys cost no round trip at all. It is safe because a key names
// the model's version (an answer of that version never changes, and a new version has other
// keys) and promote, rollback, delete and unload purge it here as in Redis; at most, an answer
// outlives its Redis TTL by CACHE_LOCAL_TTL_SECONDS on a replica that read it late in its life.

/** Answers kept in the in-process tier, at most. */
const LOCAL_ENTRIES = 10_000;

export class RedisCache implements CacheBackend {
  private readonly connection: RedisConnection;
  /** The in-process tier; undefined with CACHE_LOCAL_TTL_SECONDS=0. */
  private readonly local: LRUCache<string, Prediction> | undefined;

  /** `localSeconds`: how long the in-process tier keeps an answer (at most the cache TTL); 0: no tier. */
  constructor(connection: RedisConnection, localSeconds: number, ttlSeconds: number) {
    this.connection = connection;
    const localMs = Math.min(localSeconds, ttlSeconds) * 1000;
    this.local = localMs > 0 ? new LRUCache({ max: LOCAL_ENTRIES, ttl: localMs }) : undefined;
  }

  peek(key: string): Prediction | undefined {
    return this.local?.get(key);
  }

  async get(key: string): Promise<Prediction | undefined> {
    const near = this.local?.get(key);
    if (near !== undefined) return near;
    const raw = await this.connection.run((r) => r.get(key));
    if (raw === null) return undefined;
    const value = JSON.parse(raw) as Prediction;
    this.local?.set(key, value);
    return value;
  }

  /** Kept here at once; written to Redis with the other writes of this event-loop turn (RedisConnection.setLater). */
  set(key: string, value: Prediction, ttlSeconds: number): Promise<void> {
    this.local?.set(key, value);
    return new Promise((resolve, reject) => this.connection.setLater(key, JSON.stringify(value), ttlSeconds, (err) => (err ? reject(err) : resolve())));
  }

  /** SCAN + UNLINK over the model's keys: never KEYS, which blocks Redis. */
  async purgeModel(model: string): Promise<void> {
    const prefix = modelPrefix(model);
    if (this.local) for (const key of [...this.local.keys()]) if (key.startsWith(prefix)) this.local.delete(key);
    let cursor = '0';
    do {
      const [next, keys] = await this.connection.run((r) => r.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000));
      if (keys.length > 0) await this.connection.run((r) => r.unlink(...keys));
      cursor = next;
    } while (cursor !== '0');
  }

  state() {
    const { status, detail } = this.connection.state();
    return { backend: 'redis' as const, status, ...(detail ? { detail: `${detail}; predictions are served without the cache` } : {}) };
  }

  async close(): Promise<void> {
    this.local?.clear();
    this.connection.close();
  }
}
