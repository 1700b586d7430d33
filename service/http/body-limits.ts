import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { Socket } from 'node:net';

// How large a request body each kind of route takes: a body that may cost more than it carries is
// refused with a 413 before it is parsed. Model uploads take BODY_LIMIT_BYTES (64 MiB by default).

/** Feedback and the admin calls: small JSON. */
export const JSON_BODY_LIMIT_BYTES = 1024 * 1024;

/**
 * One prediction: a row of up to MAX_FEATURES (100,000) features, with names of up to about 40
 * characters and values printed in full precision (about 7 MB of JSON).
 */
export const ROW_BODY_LIMIT_BYTES = 8 * 1024 * 1024;

/** Many rows: the batch route and V2 infer (10,000 rows of 64 features is about 13 MB of JSON). */
export const BATCH_BODY_LIMIT_BYTES = 16 * 1024 * 1024;

/** How long a refused body is read (and thrown away) before its connection is cut. */
const REFUSED_BODY_DRAIN_MS = 10_000;

/**
 * A body refused before it was read (413, or any error answer while it is still arriving) is read
 * to its end and thrown away before the connection closes, for at most REFUSED_BODY_DRAIN_MS.
 * Fastify answers with `Connection: close` and Node closes the socket with the rest of the body
 * unread: the client, or the ingress controller forwarding for it, then fails writing the body
 * (EPIPE, a reset) and may never read the answer (Traefik answered 502 instead of our 413). Now
 * the answer keeps the connection open, Node discards what is left of the body, and the socket is
 * ended once the body is in, or destroyed if it takes longer.
 */
export const drainRefusedBodies = fp(async (app: FastifyInstance) => {
  // A callback hook, not an async one: it runs on every answer (the hot path).
  app.addHook('onSend', (request, reply, payload, done) => {
    const req = request.raw;
    const socket = req.socket;
    // (app.inject()'s requests have no socket to keep open.)
    if (reply.statusCode < 400 || req.complete || req.method === 'GET' || req.method === 'HEAD' || !(socket instanceof Socket)) return done(null, payload);
    reply.removeHeader('connection');
    const cut = setTimeout(() => socket.destroy(), REFUSED_BODY_DRAIN_MS);
    cut.unref();
    req.once('end', () => {
      clearTimeout(cut);
      // The answer first, then the close (the client may send no further request on it).
      reply.raw.once('finish', () => socket.end());
      if (reply.raw.writableFinished) socket.end();
    });
    done(null, payload);
  });
});
