import type { FastifyPluginAsync } from 'fastify';
import { z } from 'zod';
import type { ServiceContext } from '../app.ts';

const ProductionModels = z.array(
  z.object({
    name: z.string(),
    version: z.string(),
    loaded: z.boolean(),
    error: z.string().optional().describe('Why it did not load'),
    canary: z
      .object({
        version: z.string(),
        weight: z.number().describe("Percent of the model's traffic it answers (0 for a shadow)"),
        mode: z.enum(['canary', 'shadow']),
        loaded: z.boolean(),
        error: z.string().optional(),
      })
      .optional()
      .describe('A version being rolled out against this one'),
  }),
);
const Readiness = z.object({ ready: z.boolean(), models: ProductionModels });
const Health = z.object({
  status: z.enum(['ok', 'degraded']),
  uptime_seconds: z.number(),
  version: z.string(),
  control_plane: z.enum(['standalone', 'kubernetes']),
  models: ProductionModels,
  cache: z.object({ backend: z.enum(['memory', 'redis']), status: z.enum(['ok', 'degraded']), detail: z.string().optional() }),
  inference_threads: z.number(),
});

// Liveness (/health, with what a person wants to see, and what the operator reads to learn which
// version each pod serves) and readiness (/ready: every production model loaded, and under the
// operator the routing read: the readinessProbe).
export const healthRoutes: FastifyPluginAsync<{ ctx: ServiceContext }> = async (app, { ctx }) => {
  const started = Date.now();

  app.get(
    '/health',
    { schema: { operationId: 'health', tags: ['health'], summary: 'Service status, loaded models and cache state', response: { 200: Health } } },
    async () => {
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
    },
  );

  app.get(
    '/ready',
    {
      schema: {
        operationId: 'ready',
        tags: ['health'],
        summary: '200 when every production model is loaded (and, under the operator, the routing read), else 503',
        response: { 200: Readiness, 503: Readiness.describe('A production model is not loaded (yet)') },
      },
    },
    async (_req, reply) => {
      const models = ctx.registry.status();
      const ready = ctx.registry.ready();
      reply.code(ready ? 200 : 503);
      return { ready, models };
    },
  );
};
