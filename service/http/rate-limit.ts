import fastifyRateLimit from '@fastify/rate-limit';
import { createHash } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { Redis } from 'ioredis';
import type { ServiceMetrics } from '../observability/metrics.ts';

// Per-route limits per client, shared by every replica through Redis when configured. A Redis
// failure lets requests through (skipOnError) rather than blocking them.

declare module 'fastify' {
  interface FastifyContextConfig {
    rateLimitClass?: 'predict' | 'upload';
  }
}

export interface RateLimitOptions {
  predictPerMinute: number;
  uploadPerMinute: number;
  redis: Redis | undefined;
  metrics: ServiceMetrics;
}

/** Rate-limit key: the bearer token (hashed, never kept in clear) when present, else the client IP. */
function rateLimitKey(request: FastifyRequest): string {
  const auth = request.headers.authorization;
  const who = auth?.startsWith('Bearer ') ? `token:${createHash('sha256').update(auth.slice(7)).digest('base64url').slice(0, 22)}` : `ip:${request.ip}`;
  return `${request.routeOptions.config.rateLimitClass}:${who}`;
}

export const rateLimit = fp<RateLimitOptions>(async (app, options) => {
  await app.register(fastifyRateLimit, {
    global: true,
    allowList: (request) => request.routeOptions.config.rateLimitClass === undefined,
    max: (request) => (request.routeOptions.config.rateLimitClass === 'upload' ? options.uploadPerMinute : options.predictPerMinute),
    timeWindow: 60_000,
    keyGenerator: rateLimitKey,
    ...(options.redis ? { redis: options.redis, nameSpace: 'ratelimit:' } : {}),
    skipOnError: true,
    onExceeded: (request) => options.metrics.rateLimited.inc({ route: request.routeOptions.url ?? 'unmatched' }),
    // The x-ratelimit-* headers go on 429s (with retry-after), not on every answer: they cost on the hot path.
    addHeadersOnExceeding: { 'x-ratelimit-limit': false, 'x-ratelimit-remaining': false, 'x-ratelimit-reset': false },
  });
});
