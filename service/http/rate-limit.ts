import type { FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { ServiceError } from '../errors.ts';
import type { ServiceMetrics } from '../observability/metrics.ts';
import type { Admission } from './auth.ts';

// Per-route limits per client and replica, in memory: a fixed window of a minute per route class
// and client, so a check is a map lookup and an add, with no Redis round trip, and a Redis outage
// or freeze cannot slow or block it. A client is the API token when the request carries it
// (verified: an invented bearer value is no new client), else its address. REST and gRPC share
// the budgets (open-inference/grpc.ts calls check() for ModelInfer). Past the limit: 429 with
// retry-after and x-ratelimit-limit, -remaining and -reset; under it, no headers (they cost on
// the hot path). (This was @fastify/rate-limit with a local store: the same windows, at about
// 4 µs a request more, most of it promises around a synchronous map.)

declare module 'fastify' {
  interface FastifyContextConfig {
    rateLimitClass?: RateLimitClass;
  }
}

export type RateLimitClass = 'predict' | 'upload';

const WINDOW_MS = 60_000;
/** Clients remembered at most; past it, finished windows go, then the oldest (those clients start afresh). */
const MAX_CLIENTS = 10_000;

interface Window {
  count: number;
  resetAt: number;
}

export interface RateLimitDecision {
  allowed: boolean;
  limit: number;
  /** Seconds until the client's window ends. */
  resetSeconds: number;
}

export class RateLimiter {
  private readonly limits: Record<RateLimitClass, number>;
  private readonly admission: Admission;
  private readonly windows = new Map<string, Window>();

  constructor(options: { predictPerMinute: number; uploadPerMinute: number; admission: Admission }) {
    this.limits = { predict: options.predictPerMinute, upload: options.uploadPerMinute };
    this.admission = options.admission;
  }

  /** Counts one request of `client` (its Authorization header and address) against the class's budget. */
  check(rateClass: RateLimitClass, authorization: string | undefined, address: string): RateLimitDecision {
    const key = `${rateClass}:${authorization !== undefined && this.admission.hasToken(authorization) ? 'token' : `ip:${address}`}`;
    const now = performance.now();
    let w = this.windows.get(key);
    if (w === undefined || w.resetAt <= now) {
      if (w === undefined && this.windows.size >= MAX_CLIENTS) this.sweep(now);
      w = { count: 0, resetAt: now + WINDOW_MS };
      this.windows.set(key, w);
    }
    w.count++;
    const limit = this.limits[rateClass];
    return { allowed: w.count <= limit, limit, resetSeconds: Math.max(1, Math.ceil((w.resetAt - now) / 1000)) };
  }

  private sweep(now: number): void {
    for (const [k, w] of this.windows) if (w.resetAt <= now) this.windows.delete(k);
    let excess = this.windows.size - MAX_CLIENTS / 2;
    if (excess <= 0) return;
    for (const k of this.windows.keys()) {
      this.windows.delete(k);
      if (--excess <= 0) break;
    }
  }
}

/** A 429 for a decision that did not allow the request; its headers are set on the reply too (the V2 error handler keeps them). */
export function rateLimited(decision: RateLimitDecision): ServiceError & { headers: Record<string, string>; retryAfterSeconds: number } {
  const seconds = String(decision.resetSeconds);
  return Object.assign(
    new ServiceError('RATE_LIMITED', `rate limit exceeded (${decision.limit} a minute for this client and route); retry in ${seconds} seconds`),
    {
      headers: { 'retry-after': seconds, 'x-ratelimit-limit': String(decision.limit), 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': seconds },
      retryAfterSeconds: decision.resetSeconds,
    },
  );
}

export const rateLimit = fp<{ limiter: RateLimiter; metrics: ServiceMetrics }>(async (app, { limiter, metrics }) => {
  app.addHook('onRequest', (request: FastifyRequest, reply: FastifyReply, done: (err?: Error) => void) => {
    const rateClass = request.routeOptions.config.rateLimitClass;
    if (rateClass === undefined) return done();
    const decision = limiter.check(rateClass, request.headers.authorization, request.ip);
    if (decision.allowed) return done();
    metrics.rateLimited.inc({ route: request.routeOptions.url ?? 'unmatched' });
    const err = rateLimited(decision);
    reply.headers(err.headers);
    done(err);
  });
});
