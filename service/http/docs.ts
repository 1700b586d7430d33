import fastifySwagger, { type SwaggerTransform } from '@fastify/swagger';
import fastifySwaggerUi from '@fastify/swagger-ui';
import type { FastifySchema, RouteOptions } from 'fastify';
import fp from 'fastify-plugin';
import { jsonSchemaTransform } from 'fastify-type-provider-zod';
import { V2Error } from '../open-inference/rest.ts';
import { Problem } from '../routes/schemas.ts';

// The OpenAPI document (/docs/json), made from the routes' zod schemas, and the page at /docs.
// What the route flags imply is added here, once, for every route: the bearer scheme and its
// 401/403 on `admin` routes, 429 on rate-limited ones, 400/413/415 where a request is validated,
// and errors under their real content type (problem+json; the Open Inference Protocol's
// {"error"} under /v2).

const ERROR_DESCRIPTIONS: Record<string, string> = {
  400: 'The request is not valid: the detail says what to fix, errors[] names each field',
  401: 'No bearer token, or not the API_TOKEN',
  403: 'No API_TOKEN is configured and the client is not on loopback',
  404: 'No such model, version or prediction',
  409: 'The version exists already, is in production, or is managed by Kubernetes',
  413: 'The body is larger than BODY_LIMIT_BYTES',
  415: 'Unsupported content type',
  429: 'Too many requests from this client; retry-after says when to try again',
  503: 'The model is not loaded yet (or, in Kubernetes mode, the API server could not be reached)',
};

const isV2 = (url: string) => url === '/v2' || url.startsWith('/v2/');

type Responses = Record<string, unknown>;
type BodyContent = Record<string, { schema: unknown }>;

/** The route's own schema plus what its flags imply; error responses get their content type. */
function documented(route: RouteOptions, url: string, schema: FastifySchema): FastifySchema {
  const config = route.config ?? {};
  const errorSchema = isV2(url) ? V2Error : Problem;
  const response: Responses = { ...(schema.response as Responses | undefined) };
  const imply = (...codes: number[]) => {
    for (const code of codes) response[code] ??= errorSchema;
  };
  const extra: FastifySchema = {};
  if (config.admin) {
    extra.security = [{ bearer: [] }];
    imply(401, 403);
  }
  if (config.rateLimitClass) imply(429);
  if (schema.params || schema.querystring || schema.body) imply(400);
  if (schema.body) imply(413, ...(isV2(url) ? [] : [415]));
  for (const [code, s] of Object.entries(response)) {
    if (s !== Problem && s !== V2Error) continue;
    const contentType = s === Problem ? 'application/problem+json' : 'application/json';
    response[code] = { description: ERROR_DESCRIPTIONS[code] ?? 'Error', content: { [contentType]: { schema: s } } };
  }
  return { ...schema, ...extra, ...(Object.keys(response).length > 0 ? { response } : {}) };
}

const transform: SwaggerTransform = (document) => {
  const { schema, url, route } = document;
  if (!schema || schema.hide) return jsonSchemaTransform(document);
  const full = documented(route, url, schema);
  // A body given per content type ({content: {type: {schema}}}) is converted type by type.
  const body = full.body as { content?: BodyContent } | undefined;
  const out = jsonSchemaTransform({ ...document, schema: body?.content ? { ...full, body: undefined } : full });
  if (body?.content) {
    const content: BodyContent = {};
    for (const [type, { schema: s }] of Object.entries(body.content))
      content[type] = { schema: jsonSchemaTransform({ ...document, schema: { body: s } }).schema.body };
    out.schema.body = { content };
  }
  // No content for 204s, nor for a 200 that is z.null() (V2's load and unload): zod's null is a
  // JSON value, and the service sends no body.
  const responses = out.schema.response as Responses | undefined;
  const isNull = (r: unknown) => {
    const x = r as { type?: string; enum?: unknown[] };
    return x.type === 'null' || (x.enum?.length === 1 && x.enum[0] === null);
  };
  for (const code of ['200', '204'])
    if (responses?.[code] && (code === '204' || isNull(responses[code])))
      responses[code] = { type: 'null', description: (responses[code] as { description?: string }).description ?? 'No content' };
  return out;
};

/**
 * Bodies a route may go without ('x-body-optional' on its schema: promote, the V2 repository
 * calls): @fastify/swagger marks every body required, this says otherwise.
 */
function optionalBodies({ openapiObject }: { openapiObject: { paths?: Record<string, Record<string, unknown> | undefined> } }) {
  for (const path of Object.values(openapiObject.paths ?? {}))
    for (const op of Object.values(path ?? {}) as Array<Record<string, unknown>>) {
      if (!op || typeof op !== 'object' || !('x-body-optional' in op)) continue;
      delete op['x-body-optional'];
      const body = op.requestBody as { required?: boolean } | undefined;
      if (body) body.required = false;
    }
  return openapiObject;
}

export const docs = fp<{ version: string }>(async (app, { version }) => {
  await app.register(fastifySwagger, {
    openapi: {
      info: { title: 'analytics-api', description: 'ONNX model serving: model registry, predictions, metrics', version },
      components: {
        securitySchemes: {
          bearer: {
            type: 'http',
            scheme: 'bearer',
            description: 'The API_TOKEN the service was started with. Uploads, promotes and deletes need it; with none configured, loopback clients need none.',
          },
        },
      },
    },
    transform,
    transformObject: optionalBodies as never,
  });
  await app.register(fastifySwaggerUi, { routePrefix: '/docs', uiConfig: { displayOperationId: true } });
});
