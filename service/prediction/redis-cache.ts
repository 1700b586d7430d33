import type { Prediction } from '../inference/model-interface.ts';
import type { RedisConnection } from '../redis-client.ts';
import { modelPrefix, type CacheBackend } from './cache.ts';

// Predictions cached in Redis with a TTL (SET ... EX), through the connection's circuit breaker.
// Errors propagate to the Predictor, which counts them and carries on without the cache (fail-open).
export class RedisCache implements CacheBackend {
  private readonly connection: RedisConnection;

  constructor(connection: RedisConnection) {
    this.connection = connection;
  }

  async get(key: string): Promise<Prediction | undefined> {
    const raw = await this.connection.run((r) => r.get(key));
    return raw === null ? undefined : (JSON.parse(raw) as Prediction);
  }

  /** Written with the other writes of this event-loop turn (RedisConnection.setLater); nobody waits for it. */
  set(key: string, value: Prediction, ttlSeconds: number): Promise<void> {
    return new Promise((resolve, reject) => this.connection.setLater(key, JSON.stringify(value), ttlSeconds, (err) => (err ? reject(err) : resolve())));
  }

  /** SCAN + UNLINK over the model's keys: never KEYS, which blocks Redis. */
  async purgeModel(model: string): Promise<void> {
    let cursor = '0';
    do {
      const [next, keys] = await this.connection.run((r) => r.scan(cursor, 'MATCH', `${modelPrefix(model)}*`, 'COUNT', 1000));
      if (keys.length > 0) await this.connection.run((r) => r.unlink(...keys));
      cursor = next;
    } while (cursor !== '0');
  }

  state() {
    const { status, detail } = this.connection.state();
    return { backend: 'redis' as const, status, ...(detail ? { detail: `${detail}; predictions are served without the cache` } : {}) };
  }

  async close(): Promise<void> {
    this.connection.close();
  }
}
