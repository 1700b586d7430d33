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
  limit: number;
  /** Seconds until the client's window ends. */
  resetSeconds: number;
}

/** The client key of a request that carries the API token (an address never looks like it). */
const TOKEN_CLIENT = 'token:';

export class RateLimiter {
  private readonly limits: Record<RateLimitClass, number>;
  private readonly admission: Admission;
  /** Per route class, each client's window. */
  private readonly windows: Record<RateLimitClass, Map<string, Window>> = { predict: new Map(), upload: new Map() };

  constructor(options: { predictPerMinute: number; uploadPerMinute: number; admission: Admission }) {
    this.limits = { predict: options.predictPerMinute, upload: options.uploadPerMinute };
    this.admission = options.admission;
  }

  /**
   * Counts one request of `client` (its Authorization header and address) against the class's
   * budget: undefined while it is within it, else the refusal (nothing is allocated on the hot path).
   */
  check(rateClass: RateLimitClass, authorization: string | undefined, address: string): RateLimitDecision | undefined {
    const client = authorization !== undefined && this.admission.hasToken(authorization) ? TOKEN_CLIENT : address;
    const windows = this.windows[rateClass];
    const now = performance.now();
    let w = windows.get(client);
    if (w === undefined || w.resetAt <= now) {
      if (w === undefined && windows.size >= MAX_CLIENTS) sweep(windows, now);
      w = { count: 0, resetAt: now + WINDOW_MS };
      windows.set(client, w);
    }
    const limit = this.limits[rateClass];
    if (++w.count <= limit) return undefined;
    return { limit, resetSeconds: Math.max(1, Math.ceil((w.resetAt - now) / 1000)) };
  }
}

function sweep(windows: Map<string, Window>, now: number): void {
  for (const [k, w] of windows) if (w.resetAt <= now) windows.delete(k);
  let excess = windows.size - MAX_CLIENTS / 2;
  if (excess <= 0) return;
  for (const k of windows.keys()) {
    windows.delete(k);
    if (--excess <= 0) break;
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
    if (decision === undefined) return done();
    metrics.rateLimited.inc({ route: request.routeOptions.url ?? 'unmatched' });
    const err = rateLimited(decision);
    reply.headers(err.headers);
    done(err);
  });
});
