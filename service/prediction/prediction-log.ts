import { randomFillSync, randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { LRUCache } from 'lru-cache';
import { ServiceError } from '../errors.ts';
import type { Prediction } from '../inference/model-interface.ts';
import type { RedisConnection } from '../redis-client.ts';

// What was predicted under each prediction_id, kept long enough for ground truth to arrive
// (POST /api/v1/feedback). Bounded: a TTL and, in memory, a maximum number of entries; with Redis
// every replica sees every id. The log mints the ids: every answer gets one, every row of a batch
// too, so remembering is on the hot path and costs no allocation that outlives the request.

export interface PredictionRecord {
  model: string;
  version: string;
  task: 'classification' | 'regression';
  /** The predicted label (string or number) or the regressor's value. */
  predicted: number | string;
}

/** The version an answer came from (a ServedModel: key "name@version"). */
export interface AnsweringVersion {
  readonly key: string;
  readonly meta: { readonly name: string; readonly version: string };
  readonly task: 'classification' | 'regression';
}

export interface PredictionLog {
  /** Remembers a prediction; returns its prediction_id. */
  remember(version: AnsweringVersion, prediction: Prediction): string;
  /** Remembers the rows of a batch; their ids, in order. */
  rememberAll(version: AnsweringVersion, predictions: Prediction[]): string[];
  /** The record, removed so feedback counts once; undefined when unknown or expired. */
  take(id: string): Promise<PredictionRecord | undefined>;
  /** Puts back what take() returned (the feedback was refused), for the rest of its time. */
  restore(id: string, record: PredictionRecord): void;
}

const predictedOf = (p: Prediction) => p.label ?? p.prediction;

/** The rows of a batch under one Redis key: the index is the id's last 4 hex digits. */
const BATCH_ROWS_PER_KEY = 65_536;

/** SETBIT key row 1 with the log's TTL on the key; the bit it had (1: the row was taken already). */
const TAKE_BIT = `local old = redis.call('SETBIT', KEYS[1], ARGV[1], 1) redis.call('EXPIRE', KEYS[1], ARGV[2]) return old`;
type RedisWithTake = Redis & { takebit(key: string, row: number, ttlSeconds: number): Promise<number> };

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));
const NIBBLE = '0123456789abcdef';
const hex8 = (n: number) => HEX[n >>> 24]! + HEX[(n >>> 16) & 255]! + HEX[(n >>> 8) & 255]! + HEX[n & 255]!;
const hex4 = (n: number) => HEX[(n >>> 8) & 255]! + HEX[n & 255]!;
const hex3 = (n: number) => NIBBLE[(n >>> 8) & 15]! + HEX[n & 255]!;

/**
 * In memory, a ring of slots in typed arrays (no object, string or map entry per prediction: a
 * million remembered predictions are nothing for the garbage collector to trace), reused oldest
 * first once PREDICTION_LOG_MAX_ENTRIES are taken. A prediction_id is a UUID (version 4 format)
 * that carries its slot in the first 8 hex digits and 90 random bits, kept in the slot and
 * compared on feedback, so an id cannot be guessed from another.
 */
export class MemoryPredictionLog implements PredictionLog {
  private readonly capacity: number;
  private readonly ttlMs: number;
  /** Slots in use so far (the arrays grow to capacity by doubling). */
  private size = 0;
  private next = 0;
  private tagA = new Uint32Array(0);
  private tagB = new Uint32Array(0);
  private tagC = new Uint32Array(0);
  /** performance.now() when the slot expires; 0: empty; negative: taken (restore() flips it back). */
  private expires = new Float64Array(0);
  private versionOf = new Uint32Array(0);
  /** The value, or for string labels the label's index in its version's labels. */
  private value = new Float64Array(0);
  private readonly versions: Array<{ model: string; version: string; task: PredictionRecord['task']; labels: string[] }> = [];
  private readonly versionIndex = new Map<string, number>();
  private readonly random = new Uint32Array(3 * 1024);
  private randomAt = this.random.length;

  constructor(ttlSeconds: number, maxEntries: number) {
    this.capacity = Math.max(1, Math.min(maxEntries, 2 ** 31));
    this.ttlMs = ttlSeconds * 1000;
  }

  remember(version: AnsweringVersion, prediction: Prediction): string {
    return this.store(this.versionSlot(version), prediction, performance.now() + this.ttlMs);
  }

  rememberAll(version: AnsweringVersion, predictions: Prediction[]): string[] {
    const v = this.versionSlot(version);
    const expires = performance.now() + this.ttlMs;
    const ids = new Array<string>(predictions.length);
    for (let i = 0; i < predictions.length; i++) ids[i] = this.store(v, predictions[i]!, expires);
    return ids;
  }

  async take(id: string): Promise<PredictionRecord | undefined> {
    const slot = this.find(id);
    if (slot < 0) return undefined;
    const expires = this.expires[slot]!;
    if (expires <= 0 || expires < performance.now()) return undefined;
    this.expires[slot] = -expires;
    const v = this.versions[this.versionOf[slot]!]!;
    const value = this.value[slot]!;
    return {
      model: v.model,
      version: v.version,
      task: v.task,
      predicted: v.labels.length > 0 && Number.isInteger(value) && value < 0 ? v.labels[-value - 1]! : value,
    };
  }

  restore(id: string, _record?: PredictionRecord): void {
    const slot = this.find(id);
    if (slot >= 0 && this.expires[slot]! < 0) this.expires[slot] = -this.expires[slot]!;
  }

  private versionSlot(version: AnsweringVersion): number {
    let v = this.versionIndex.get(version.key);
    if (v === undefined) {
      v = this.versions.push({ model: version.meta.name, version: version.meta.version, task: version.task, labels: [] }) - 1;
      this.versionIndex.set(version.key, v);
    }
    return v;
  }

  private store(v: number, prediction: Prediction, expires: number): string {
    if (this.next === this.size && this.size < this.capacity) this.grow();
    const slot = this.next;
    this.next = this.next + 1 === this.capacity ? 0 : this.next + 1;
    if (this.randomAt === this.random.length) {
      randomFillSync(this.random);
      this.randomAt = 0;
    }
    const a = this.random[this.randomAt++]! >>> 4; // 28 bits
    const b = this.random[this.randomAt++]! >>> 2; // 30 bits
    const c = this.random[this.randomAt++]!; // 32 bits
    this.tagA[slot] = a;
    this.tagB[slot] = b;
    this.tagC[slot] = c;
    this.expires[slot] = expires;
    this.versionOf[slot] = v;
    // String labels are kept as -(1 + their index in the version's labels): the value slot stays a number.
    if (prediction.label !== undefined) {
      const labels = this.versions[v]!.labels;
      let at = labels.indexOf(prediction.label);
      if (at < 0) at = labels.push(prediction.label) - 1;
      this.value[slot] = -1 - at;
    } else this.value[slot] = prediction.prediction;
    return `${hex8(slot)}-${hex4(a >>> 12)}-4${hex3(a)}-${NIBBLE[8 | (b >>> 28)]}${hex3(b >>> 16)}-${hex4(b)}${hex8(c)}`;
  }

  /** The slot an id names, or -1 when it names none (or another prediction that had the slot before). */
  private find(id: string): number {
    if (id.length !== 36 || id[14] !== '4') return -1;
    const slot = Number.parseInt(id.slice(0, 8), 16);
    if (!(slot >= 0 && slot < this.size)) return -1;
    const a = ((Number.parseInt(id.slice(9, 13), 16) << 12) | Number.parseInt(id.slice(15, 18), 16)) >>> 0;
    const b = (((Number.parseInt(id[19]!, 16) & 3) << 28) | (Number.parseInt(id.slice(20, 23), 16) << 16) | Number.parseInt(id.slice(24, 28), 16)) >>> 0;
    const c = Number.parseInt(id.slice(28, 36), 16) >>> 0;
    return this.tagA[slot] === a && this.tagB[slot] === b && this.tagC[slot] === c ? slot : -1;
  }

  private grow(): void {
    const size = Math.min(this.capacity, Math.max(1024, this.size * 2));
    const grown = <T extends Uint32Array | Float64Array>(old: T, Ctor: new (n: number) => T): T => {
      const fresh = new Ctor(size);
      fresh.set(old);
      return fresh;
    };
    this.tagA = grown(this.tagA, Uint32Array);
    this.tagB = grown(this.tagB, Uint32Array);
    this.tagC = grown(this.tagC, Uint32Array);
    this.expires = grown(this.expires, Float64Array);
    this.versionOf = grown(this.versionOf, Uint32Array);
    this.value = grown(this.value, Float64Array);
    this.size = size;
  }
}

/**
 * Through Redis, so every replica sees every id: SET predlog:<id> with the TTL, written in batches
 * (RedisConnection.setLater: one command for all the answers of an event-loop turn) and never
 * awaited by the answer. The rows of a REST batch share one key: their ids are one random UUID
 * with the row's index in its last 4 hex digits, and predlog:b:<the other 32 characters> holds the
 * batch's record with every row's predicted value; a bit per row in predlog:t:<same> says which
 * rows feedback took (SETBIT's old bit: one take per row, as GETDEL gives the single answers). During a Redis outage the ids this replica hands out are kept in its own
 * memory (bounded like the in-memory log) and feedback for them works on this replica; feedback
 * that needs Redis while it is away is a 503 with Retry-After, and nothing is taken from the log
 * until it answers (a GET, then the GETDEL that takes it).
 */
export class RedisPredictionLog implements PredictionLog {
  private readonly connection: RedisConnection;
  private readonly ttlSeconds: number;
  private readonly onError: (err: Error) => void;
  private readonly local: LRUCache<string, PredictionRecord>;
  /** Per version: the JSON of its record up to the predicted value. */
  private readonly prefixes = new Map<string, string>();

  constructor(connection: RedisConnection, ttlSeconds: number, maxLocalEntries: number, onError: (err: Error) => void) {
    this.connection = connection;
    connection.redis.defineCommand('takebit', { numberOfKeys: 1, lua: TAKE_BIT });
    this.ttlSeconds = ttlSeconds;
    this.onError = onError;
    this.local = new LRUCache({ max: maxLocalEntries, ttl: ttlSeconds * 1000 });
  }

  remember(version: AnsweringVersion, prediction: Prediction): string {
    const id = randomUUID();
    this.write(id, this.prefixOf(version), version, predictedOf(prediction));
    return id;
  }

  rememberAll(version: AnsweringVersion, predictions: Prediction[]): string[] {
    if (predictions.length === 1) return [this.remember(version, predictions[0]!)];
    // Rows past 65,536 (more than a batch may hold) get ids of their own.
    const rows = Math.min(predictions.length, BATCH_ROWS_PER_KEY);
    const stem = randomUUID().slice(0, 32);
    const ids = new Array<string>(predictions.length);
    const predicted = new Array<number | string>(rows);
    for (let i = 0; i < rows; i++) {
      ids[i] = stem + hex4(i);
      predicted[i] = predictedOf(predictions[i]!);
    }
    this.connection.setLater(`predlog:b:${stem}`, `${this.prefixOf(version)}${JSON.stringify(predicted)}}`, this.ttlSeconds, (err) => {
      if (!err) return;
      for (let i = 0; i < rows; i++)
        this.local.set(ids[i]!, { model: version.meta.name, version: version.meta.version, task: version.task, predicted: predicted[i]! });
      this.onError(err);
    });
    for (let i = rows; i < predictions.length; i++) ids[i] = this.remember(version, predictions[i]!);
    return ids;
  }

  restore(id: string, record: PredictionRecord): void {
    this.connection.setLater(`predlog:${id}`, JSON.stringify(record), this.ttlSeconds, (err) => {
      if (!err) return;
      this.local.set(id, record);
      this.onError(err);
    });
  }

  async take(id: string): Promise<PredictionRecord | undefined> {
    const kept = this.local.get(id);
    if (kept) {
      this.local.delete(id);
      return kept;
    }
    // A read first, then the take: a command that timed out may still run once Redis answers again,
    // and a GETDEL that ran after its 503 would lose the record; a GET that did changes nothing.
    // A batch row's record (or one restore() put back under its own id) is found by the same reads.
    const stem = id.slice(0, 32);
    const row = Number.parseInt(id.slice(32), 16);
    let raw: string | null;
    try {
      const [single, batch] = await Promise.all([
        this.connection.run((r) => r.get(`predlog:${id}`)),
        id.length === 36 ? this.connection.run((r) => r.get(`predlog:b:${stem}`)) : null,
      ]);
      if (single !== null) {
        raw = await this.connection.run((r) => r.getdel(`predlog:${id}`));
        return raw === null ? undefined : (JSON.parse(raw) as PredictionRecord);
      }
      if (batch === null) return undefined;
      const record = JSON.parse(batch) as Omit<PredictionRecord, 'predicted'> & { predicted: Array<number | string> };
      const predicted = record.predicted[row];
      if (predicted === undefined) return undefined;
      const taken = await this.connection.run((r) => (r as RedisWithTake).takebit(`predlog:t:${stem}`, row, this.ttlSeconds));
      return taken === 1 ? undefined : { ...record, predicted };
    } catch (err) {
      this.onError(err as Error);
      throw new ServiceError('REDIS_UNAVAILABLE', 'the prediction log (Redis) cannot be reached just now; send the feedback again in a few seconds');
    }
  }

  private prefixOf(version: AnsweringVersion): string {
    let prefix = this.prefixes.get(version.key);
    if (prefix === undefined) {
      prefix = `{"model":${JSON.stringify(version.meta.name)},"version":${JSON.stringify(version.meta.version)},"task":"${version.task}","predicted":`;
      this.prefixes.set(version.key, prefix);
    }
    return prefix;
  }

  private write(id: string, prefix: string, version: AnsweringVersion, predicted: number | string): void {
    this.connection.setLater(`predlog:${id}`, `${prefix}${JSON.stringify(predicted)}}`, this.ttlSeconds, (err) => {
      if (!err) return;
      this.local.set(id, { model: version.meta.name, version: version.meta.version, task: version.task, predicted });
      this.onError(err);
    });
  }
}
