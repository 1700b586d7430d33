import type { FastifyPluginAsync } from 'fastify';
import type { ServiceContext } from '../app.ts';

// Liveness (/health, with what a person wants to see, and what the operator reads to learn which
// version each pod serves) and readiness (/ready: every production model loaded, and under the
// operator the routing read: the readinessProbe).
export const healthRoutes: FastifyPluginAsync<{ ctx: ServiceContext }> = async (app, { ctx }) => {
  const started = Date.now();

  app.get('/health', { schema: { tags: ['health'], summary: 'Service status, loaded models and cache state' } }, async () => {
    const cache = ctx.cache.state();
    const models = ctx.registry.status();
    return {
      status: cache.status === 'ok' && models.every((m) => m.loaded) ? 'ok' : 'degraded',
      uptime_seconds: Math.round((Date.now() - started) / 1000),
      version: ctx.serviceVersion,
      control_plane: ctx.config.CONTROL_PLANE,
      models,
      cache,
      inference_threads: ctx.pool.size,
    };
  });

  app.get('/ready', { schema: { tags: ['health'], summary: '200 when every production model is loaded' } }, async (_req, reply) => {
    const models = ctx.registry.status();
    const ready = ctx.registry.ready();
    reply.code(ready ? 200 : 503);
    return { ready, models };
  });
};
