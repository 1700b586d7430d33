import type { Redis } from 'ioredis';
import { LRUCache } from 'lru-cache';

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

export class RedisPredictionLog implements PredictionLog {
  private readonly redis: Redis;
  private readonly ttlSeconds: number;
  private readonly onError: (err: Error) => void;

  constructor(redis: Redis, ttlSeconds: number, onError: (err: Error) => void) {
    this.redis = redis;
    this.ttlSeconds = ttlSeconds;
    this.onError = onError;
  }

  remember(id: string, record: PredictionRecord): void {
    this.redis.set(`predlog:${id}`, JSON.stringify(record), 'EX', this.ttlSeconds).catch(this.onError);
  }

  async take(id: string): Promise<PredictionRecord | undefined> {
    const raw = await this.redis.getdel(`predlog:${id}`);
    return raw === null ? undefined : (JSON.parse(raw) as PredictionRecord);
  }
}
