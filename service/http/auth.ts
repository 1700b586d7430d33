import { timingSafeEqual } from 'node:crypto';
import fp from 'fastify-plugin';
import { LRUCache } from 'lru-cache';
import { ServiceError } from '../errors.ts';

// Who may change models: routes flagged `admin` need the API token (Authorization: Bearer), or,
// with no token configured, a loopback client. The client is the one the service believes: the
// socket's peer, or behind a trusted proxy its X-Forwarded-For (request.ip), so a remote client
// behind a local proxy is not taken for a local one. Guessing is limited: past a few wrong tokens
// a minute, a client gets 429s (and its guesses are not even checked) until the minute is over.

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Needs the API token (or, with none configured, a loopback client). */
    admin?: boolean;
  }
}

const LOOPBACK = new Set(['127.0.0.1', '::1', '::ffff:127.0.0.1']);
/** Wrong tokens a client may send in a minute before it is refused without a check. */
const FAILURES_PER_MINUTE = 10;
const WINDOW_MS = 60_000;

export class Admission {
  private readonly token: Buffer | undefined;
  private readonly failures = new LRUCache<string, { count: number; since: number }>({ max: 10_000, ttl: WINDOW_MS });

  /**
   * `fixedReason`: why no model may change even with the token (several standalone HTTP workers,
   * each holding its own models: a change in one would not reach the others).
   */
  private readonly fixedReason: string | undefined;

  constructor(token: string | undefined, fixedReason?: string) {
    this.token = token === undefined ? undefined : Buffer.from(token);
    this.fixedReason = fixedReason;
  }

  private admitted(): ServiceError | undefined {
    return this.fixedReason === undefined ? undefined : new ServiceError('MODELS_FIXED', this.fixedReason);
  }

  /** Whether the Authorization header carries the API token (and not just any bearer value). */
  hasToken(header: string | undefined): boolean {
    if (!this.token || !header?.startsWith('Bearer ')) return false;
    const given = Buffer.from(header.slice(7).trim());
    return given.length === this.token.length && timingSafeEqual(given, this.token);
  }

  /** Why `client` may not change models (undefined: it may); also used by gRPC. */
  denial(header: string | undefined, client: string | undefined): ServiceError | undefined {
    if (!this.token) {
      if (LOOPBACK.has(client ?? '')) return this.admitted();
      return new ServiceError('FORBIDDEN', 'no API_TOKEN is configured, so model changes are accepted from loopback clients only');
    }
    const key = client ?? '';
    const failed = this.failures.get(key);
    if (failed && failed.count >= FAILURES_PER_MINUTE) {
      const retryAfter = Math.max(1, Math.ceil((failed.since + WINDOW_MS - Date.now()) / 1000));
      return Object.assign(new ServiceError('RATE_LIMITED', `too many wrong tokens from this client; retry in ${retryAfter} seconds`), {
        headers: { 'retry-after': String(retryAfter) },
        retryAfterSeconds: retryAfter,
      });
    }
    if (this.hasToken(header)) return this.admitted();
    if (failed) failed.count++;
    else this.failures.set(key, { count: 1, since: Date.now() });
    return new ServiceError('UNAUTHORIZED', 'send Authorization: Bearer <API_TOKEN>');
  }
}

export const auth = fp<{ admission: Admission }>(async (app, { admission }) => {
  app.addHook('onRequest', (request, _reply, done) => {
    if (!request.routeOptions.config.admin) return done();
    done(admission.denial(request.headers.authorization, request.ip));
  });
});
