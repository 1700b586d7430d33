import fastifySwagger from '@fastify/swagger';
import fastifySwaggerUi from '@fastify/swagger-ui';
import fp from 'fastify-plugin';
import { jsonSchemaTransform } from 'fastify-type-provider-zod';

// The OpenAPI document (/docs/json), made from the routes' zod schemas, and the page at /docs.

export const docs = fp<{ version: string }>(async (app, { version }) => {
  await app.register(fastifySwagger, {
    openapi: {
      info: { title: 'analytics-api', description: 'ONNX model serving: model registry, predictions, metrics', version },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
    },
    transform: jsonSchemaTransform,
  });
  await app.register(fastifySwaggerUi, { routePrefix: '/docs' });
});
