import fp from 'fastify-plugin';
import { z } from 'zod';
import type { ServiceMetrics } from '../observability/metrics.ts';

// HTTP figures of every answer (by route template, never the raw URL) and GET /metrics.

/** `read`: what GET /metrics answers, when not this process's own registry (several HTTP workers). */
export const httpMetrics = fp<{ metrics: ServiceMetrics; read?: () => Promise<string> }>(async (app, { metrics, read }) => {
  app.addHook('onResponse', (request, reply, done) => {
    metrics.observeHttp(request.method, request.routeOptions.url ?? 'unmatched', reply.statusCode, reply.elapsedTime / 1000);
    done();
  });

  app.get(
    '/metrics',
    {
      schema: {
        operationId: 'metrics',
        tags: ['health'],
        summary: 'Prometheus metrics',
        produces: ['text/plain'],
        response: { 200: z.string().describe('The Prometheus text format') },
      },
    },
    async (_req, reply) => {
      reply.type(metrics.registry.contentType);
      return read ? read() : metrics.registry.metrics();
    },
  );
});
