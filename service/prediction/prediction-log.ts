import { LRUCache } from 'lru-cache';
import { ServiceError } from '../errors.ts';
import type { RedisConnection } from '../redis-client.ts';

// What was predicted under each prediction_id, kept long enough for ground truth to arrive
// (POST /api/v1/feedback). Bounded: a TTL and, in memory, a maximum number of entries; with Redis
// every replica sees every id.

export interface PredictionRecord {
  model: string;
  version: string;
  task: 'classification' | 'regression';
  /** The predicted label (string or number) or the regressor's value. */
  predicted: number | string;
}

export interface PredictionLog {
  remember(id: string, record: PredictionRecord): void;
  /** The record, removed so feedback counts once; undefined when unknown or expired. */
  take(id: string): Promise<PredictionRecord | undefined>;
}

export class MemoryPredictionLog implements PredictionLog {
  private readonly entries: LRUCache<string, PredictionRecord>;

  constructor(ttlSeconds: number, maxEntries: number) {
    this.entries = new LRUCache({ max: maxEntries, ttl: ttlSeconds * 1000 });
  }

  remember(id: string, record: PredictionRecord): void {
    this.entries.set(id, record);
  }

  async take(id: string): Promise<PredictionRecord | undefined> {
    const record = this.entries.get(id);
    this.entries.delete(id);
    return record;
  }
}

/**
 * Through Redis, so every replica sees every id. During a Redis outage the ids this replica hands
 * out are kept in its own memory (bounded like the in-memory log) and feedback for them works on
 * this replica; feedback that needs Redis while it is away is a 503 with Retry-After, and nothing
 * is taken from the log until it answers.
 */
export class RedisPredictionLog implements PredictionLog {
  private readonly connection: RedisConnection;
  private readonly ttlSeconds: number;
  private readonly onError: (err: Error) => void;
  private readonly local: MemoryPredictionLog;

  constructor(connection: RedisConnection, ttlSeconds: number, maxLocalEntries: number, onError: (err: Error) => void) {
    this.connection = connection;
    this.ttlSeconds = ttlSeconds;
    this.onError = onError;
    this.local = new MemoryPredictionLog(ttlSeconds, maxLocalEntries);
  }

  remember(id: string, record: PredictionRecord): void {
    this.connection
      .run((r) => r.set(`predlog:${id}`, JSON.stringify(record), 'EX', this.ttlSeconds))
      .catch((err: Error) => {
        this.local.remember(id, record);
        this.onError(err);
      });
  }

  async take(id: string): Promise<PredictionRecord | undefined> {
    const kept = await this.local.take(id);
    if (kept) return kept;
    let raw: string | null;
    try {
      raw = await this.connection.run((r) => r.getdel(`predlog:${id}`));
    } catch (err) {
      this.onError(err as Error);
      throw new ServiceError('REDIS_UNAVAILABLE', 'the prediction log (Redis) cannot be reached just now; send the feedback again in a few seconds');
    }
    return raw === null ? undefined : (JSON.parse(raw) as PredictionRecord);
  }
}
