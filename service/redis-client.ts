import { Redis } from 'ioredis';

// The one Redis connection (the prediction cache and the prediction log). Tight timeouts and no
// offline queue: with Redis slow or down, commands fail fast and callers fall back, rather than
// queueing behind a dead connection. It reconnects by itself, at most a second apart.
//
// A circuit breaker in front of it: after a few failures in a row (a frozen Redis answers nothing
// until each command's timeout), Redis is skipped for a while, so a request waits for at most one
// timeout, not one per command; then one call probes it, and the first success closes the circuit.
// With no traffic to probe it, a PING does once the cooldown is over, so a quiet replica's /health
// is ok again soon after Redis is back. /health says degraded while it is open.
//
// Round trips: commands issued in the same event-loop turn go out in one write (ioredis's auto
// pipelining), and writes nobody waits for (cached answers, the prediction log) are batched by
// setLater() into one command per turn.

const FAILURES_TO_OPEN = 3;
const COOLDOWN_MS = 1_000;
const COOLDOWN_MAX_MS = 10_000;

/** Redis was not asked: the circuit is open (it failed just now). */
class RedisSkipped extends Error {}

/** SET key value EX ttl for every key: KEYS are the keys, ARGV value and TTL in turn. */
const SET_MANY = `for i, key in ipairs(KEYS) do redis.call('SET', key, ARGV[2 * i - 1], 'EX', ARGV[2 * i]) end return #KEYS`;

interface PendingSet {
  key: string;
  value: string;
  ttlSeconds: number;
  done: (err?: Error) => void;
}

type WithSetMany = Redis & { setmany(numberOfKeys: number, ...keysThenArgs: Array<string | number>): Promise<number> };

export class RedisConnection {
  readonly redis: Redis;
  private failures = 0;
  private openUntil = 0;
  private cooldown = COOLDOWN_MS;
  private probing = false;
  private lastError: string | undefined;
  private pending: PendingSet[] = [];
  private probeTimer: NodeJS.Timeout | undefined;

  constructor(url: string, commandTimeoutMs: number) {
    this.redis = new Redis(url, {
      lazyConnect: false,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: commandTimeoutMs,
      connectTimeout: 1000,
      retryStrategy: (attempt) => Math.min(50 * attempt, 1000),
      reconnectOnError: () => true,
      enableAutoPipelining: true,
    });
    this.redis.defineCommand('setmany', { lua: SET_MANY });
    // Errors surface through the commands that fail; the connection's own are expected while Redis is away.
    this.redis.on('error', (err: Error) => {
      this.lastError = err.message;
    });
  }

  /** Runs a command through the breaker: RedisSkipped while it is open, the command's error when it fails. */
  async run<T>(command: (redis: Redis) => Promise<T>): Promise<T> {
    const now = Date.now();
    if (now < this.openUntil || (this.failures >= FAILURES_TO_OPEN && this.probing)) throw new RedisSkipped('Redis is skipped for a moment after failing');
    const probe = this.failures >= FAILURES_TO_OPEN;
    if (probe) this.probing = true;
    try {
      const result = await command(this.redis);
      this.failures = 0;
      this.cooldown = COOLDOWN_MS;
      return result;
    } catch (err) {
      this.lastError = (err as Error).message;
      if (++this.failures >= FAILURES_TO_OPEN) {
        this.openUntil = Date.now() + this.cooldown;
        this.probeLater(this.cooldown);
        if (probe) this.cooldown = Math.min(this.cooldown * 2, COOLDOWN_MAX_MS);
      }
      throw err;
    } finally {
      if (probe) this.probing = false;
    }
  }

  /** A PING once the circuit may close, unless traffic probed it first (run() then succeeds or schedules the next). */
  private probeLater(ms: number): void {
    if (this.probeTimer) return;
    this.probeTimer = setTimeout(() => {
      this.probeTimer = undefined;
      if (this.failures < FAILURES_TO_OPEN) return;
      const wait = this.openUntil - Date.now();
      // Opened again meanwhile, or a request is probing: look again when that is over.
      if (wait > 0 || this.probing) return this.probeLater(Math.max(wait, 50));
      this.run((r) => r.ping()).catch(() => {});
    }, ms + 10);
    this.probeTimer.unref();
  }

  /**
   * SET key value EX ttl, sent with the other writes of this event-loop turn in one command;
   * done() once written, done(err) when it failed (or Redis is skipped).
   */
  setLater(key: string, value: string, ttlSeconds: number, done: (err?: Error) => void): void {
    if (this.pending.push({ key, value, ttlSeconds, done }) === 1) setImmediate(() => this.flush());
  }

  private flush(): void {
    const batch = this.pending;
    this.pending = [];
    const settle = (err?: Error) => {
      for (const p of batch) p.done(err);
    };
    const failed = (err: Error) => settle(err);
    if (batch.length === 1) {
      const { key, value, ttlSeconds } = batch[0]!;
      this.run((r) => r.set(key, value, 'EX', ttlSeconds)).then(() => settle(), failed);
      return;
    }
    const args: Array<string | number> = batch.map((p) => p.key);
    for (const p of batch) args.push(p.value, p.ttlSeconds);
    this.run((r) => (r as WithSetMany).setmany(batch.length, ...args)).then(() => settle(), failed);
  }

  state(): { status: 'ok' | 'degraded'; detail?: string } {
    if (this.redis.status === 'ready' && this.failures < FAILURES_TO_OPEN) return { status: 'ok' };
    const why = this.failures >= FAILURES_TO_OPEN ? `skipped after ${this.failures} failures in a row` : `connection ${this.redis.status}`;
    return { status: 'degraded', detail: `redis ${why}${this.lastError ? ` (${this.lastError})` : ''}` };
  }

  close(): void {
    clearTimeout(this.probeTimer);
    this.redis.disconnect();
  }
}
