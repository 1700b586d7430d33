import { Redis } from 'ioredis';

// The one Redis connection (cache, shared rate limits, prediction log). Tight timeouts and no
// offline queue: with Redis slow or down, commands fail fast and callers fall back, rather than
// queueing behind a dead connection. It reconnects by itself, at most a second apart.
export function createRedis(url: string, commandTimeoutMs: number): Redis {
  const redis = new Redis(url, {
    lazyConnect: false,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    commandTimeout: commandTimeoutMs,
    connectTimeout: 1000,
    retryStrategy: (attempt) => Math.min(50 * attempt, 1000),
    reconnectOnError: () => true,
  });
  // Errors surface through the commands that fail; the connection's own are expected while Redis is away.
  redis.on('error', () => {});
  return redis;
}
