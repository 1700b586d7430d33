import fastifyRateLimit from '@fastify/rate-limit';
import type { FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { ServiceMetrics } from '../observability/metrics.ts';
import type { Admission } from './auth.ts';

// Per-route limits per client and replica, in memory: a check costs microseconds and no Redis
// round trip, and a Redis outage or freeze cannot slow or block it. A client is the API token when
// the request carries it (verified: an invented bearer value is no new client), else its address.

declare module 'fastify' {
  interface FastifyContextConfig {
    rateLimitClass?: 'predict' | 'upload';
  }
}

export interface RateLimitOptions {
  predictPerMinute: number;
  uploadPerMinute: number;
  admission: Admission;
  metrics: ServiceMetrics;
}

export const rateLimit = fp<RateLimitOptions>(async (app, options) => {
  await app.register(fastifyRateLimit, {
    global: true,
    allowList: (request) => request.routeOptions.config.rateLimitClass === undefined,
    max: (request) => (request.routeOptions.config.rateLimitClass === 'upload' ? options.uploadPerMinute : options.predictPerMinute),
    timeWindow: 60_000,
    keyGenerator: (request: FastifyRequest) =>
      `${request.routeOptions.config.rateLimitClass}:${options.admission.hasToken(request.headers.authorization) ? 'token' : `ip:${request.ip}`}`,
    onExceeded: (request) => options.metrics.rateLimited.inc({ route: request.routeOptions.url ?? 'unmatched' }),
    // The x-ratelimit-* headers go on 429s (with retry-after), not on every answer: they cost on the hot path.
    addHeadersOnExceeding: { 'x-ratelimit-limit': false, 'x-ratelimit-remaining': false, 'x-ratelimit-reset': false },
  });
});
