import type { Redis } from 'ioredis';
import type { Prediction } from '../inference/model-interface.ts';
import { modelPrefix, type CacheBackend } from './cache.ts';

// Predictions cached in Redis with a TTL (SET ... EX). Errors propagate to the Predictor, which
// counts them and carries on without the cache (fail-open).
export class RedisCache implements CacheBackend {
  private readonly redis: Redis;
  private lastError: string | undefined;

  constructor(redis: Redis) {
    this.redis = redis;
    redis.on('ready', () => {
      this.lastError = undefined;
    });
    redis.on('error', (err: Error) => {
      this.lastError = err.message;
    });
  }

  async get(key: string): Promise<Prediction | undefined> {
    const raw = await this.redis.get(key);
    return raw === null ? undefined : (JSON.parse(raw) as Prediction);
  }

  async set(key: string, value: Prediction, ttlSeconds: number): Promise<void> {
    await this.redis.set(key, JSON.stringify(value), 'EX', ttlSeconds);
  }

  /** SCAN + UNLINK over the model's keys: never KEYS, which blocks Redis. */
  async purgeModel(model: string): Promise<void> {
    let cursor = '0';
    do {
      const [next, keys] = await this.redis.scan(cursor, 'MATCH', `${modelPrefix(model)}*`, 'COUNT', 1000);
      if (keys.length > 0) await this.redis.unlink(...keys);
      cursor = next;
    } while (cursor !== '0');
  }

  state() {
    const ok = this.redis.status === 'ready';
    return {
      backend: 'redis' as const,
      status: ok ? ('ok' as const) : ('degraded' as const),
      ...(ok
        ? {}
        : { detail: `redis connection ${this.redis.status}${this.lastError ? `: ${this.lastError}` : ''}; predictions are served without the cache` }),
    };
  }

  async close(): Promise<void> {
    this.redis.disconnect();
  }
}
