import { timingSafeEqual } from 'node:crypto';
import fp from 'fastify-plugin';
import { ServiceError } from '../errors.ts';

// Who may change models: routes flagged `admin` need the API token (Authorization: Bearer), or,
// with no token configured, a loopback client.

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Needs the API token (or, with none configured, a loopback client). */
    admin?: boolean;
  }
}

const LOOPBACK = new Set(['127.0.0.1', '::1', '::ffff:127.0.0.1']);

/** Why a change of models is refused (undefined: allowed), from the Authorization header and the client's address; also used by gRPC. */
export function adminDenial(header: string | undefined, remoteAddress: string | undefined, token: string | undefined): ServiceError | undefined {
  if (token) {
    if (!header?.startsWith('Bearer ')) return new ServiceError('UNAUTHORIZED', 'send Authorization: Bearer <API_TOKEN>');
    const given = Buffer.from(header.slice(7).trim());
    const want = Buffer.from(token);
    return given.length === want.length && timingSafeEqual(given, want)
      ? undefined
      : new ServiceError('UNAUTHORIZED', 'send Authorization: Bearer <API_TOKEN>');
  }
  if (LOOPBACK.has(remoteAddress ?? '')) return undefined;
  return new ServiceError('FORBIDDEN', 'no API_TOKEN is configured, so model changes are accepted from loopback clients only');
}

export const auth = fp<{ token: string | undefined }>(async (app, { token }) => {
  app.addHook('onRequest', (request, _reply, done) => {
    if (!request.routeOptions.config.admin) return done();
    done(adminDenial(request.headers.authorization, request.socket.remoteAddress, token));
  });
});
