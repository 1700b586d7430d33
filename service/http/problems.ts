import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';
import { MODEL_NAME_RULE } from '../../contract/model-names.ts';
import { errorCatalog, ServiceError, type ErrorCode, type ProblemDetail } from '../errors.ts';
import type { ServiceMetrics } from '../observability/metrics.ts';

// The one place errors become HTTP answers: RFC 9457 problem+json with the service's stable code
// (the Open Inference Protocol routes shape the same outcome as {"error"}, open-inference/rest.ts).

function problemBody(code: ErrorCode, detail: string, instance: string, details?: ProblemDetail[]) {
  const { status, title } = errorCatalog[code];
  return {
    type: `urn:analytics-api:problem:${code.toLowerCase().replaceAll('_', '-')}`,
    title,
    status,
    code,
    detail,
    instance,
    ...(details && details.length > 0 ? { errors: details } : {}),
  };
}

/** Fastify's own errors (and the zod validator's) → the service's codes. */
function classify(err: FastifyError, bodyLimit?: number): { code: ErrorCode; detail: string; details?: ProblemDetail[] } {
  if (hasZodFastifySchemaValidationErrors(err)) {
    const details = err.validation.map((v) => {
      const path = v.instancePath.replace(/^\//, '').replaceAll('/', '.');
      const where = `${err.validationContext ?? 'body'}${path ? `.${path}` : ''}`;
      return { field: where, message: `${where}: ${v.message}` };
    });
    return { code: 'VALIDATION_FAILED', detail: details.map((d) => d.message).join('; '), details };
  }
  switch (err.code) {
    case 'FST_ERR_MAX_PARAM_LENGTH':
      return { code: 'VALIDATION_FAILED', detail: `a path parameter is too long; ${MODEL_NAME_RULE}, and so is a version` };
    case 'FST_ERR_BAD_URL':
      return { code: 'VALIDATION_FAILED', detail: 'the path is not a valid URL (a bad percent-encoding?)' };
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return {
        code: 'BODY_TOO_LARGE',
        detail: `${err.message}: this route takes at most ${bodyLimit ?? '?'} bytes; send many rows to /batch, upload large models as application/octet-stream (BODY_LIMIT_BYTES)`,
      };
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return { code: 'UNSUPPORTED_MEDIA_TYPE', detail: `${err.message}; send application/json (or application/octet-stream to upload a model)` };
    case 'FST_ERR_RATE_LIMITED':
      return { code: 'RATE_LIMITED', detail: err.message };
  }
  if (err.statusCode === 429) return { code: 'RATE_LIMITED', detail: err.message };
  if (err.statusCode === 413) return { code: 'BODY_TOO_LARGE', detail: err.message };
  if (err.statusCode === 415) return { code: 'UNSUPPORTED_MEDIA_TYPE', detail: err.message };
  if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500) return { code: 'VALIDATION_FAILED', detail: err.message };
  return { code: 'INTERNAL', detail: 'internal error; the service log has the details' };
}

/** Any error → the service's code, a detail that says what to fix, and the fields at fault. */
export function errorOutcome(err: Error, bodyLimit?: number): { code: ErrorCode; detail: string; details?: ProblemDetail[] } {
  if (err instanceof ServiceError) return { code: err.code, detail: err.message, ...(err.details ? { details: err.details } : {}) };
  return classify(err as FastifyError, bodyLimit);
}

const pathOf = (url: string) => url.split('?')[0]!;

/**
 * Fastify's `frameworkErrors`: what the router answers before any route or error handler runs (a
 * path parameter past maxParamLength, a bad URL), in the same shapes: problem+json, or the Open
 * Inference Protocol's {"error"} under /v2.
 */
export function routerProblem(err: FastifyError, request: FastifyRequest, reply: FastifyReply, metrics: ServiceMetrics): void {
  const { code, detail, details } = errorOutcome(err);
  const path = pathOf(request.url);
  metrics.errors.inc({ code });
  if (path === '/v2' || path.startsWith('/v2/')) {
    reply.code(errorCatalog[code].status).send({ error: detail });
    return;
  }
  const body = problemBody(code, detail, path, details);
  reply.code(body.status).type('application/problem+json').send(body);
}

export const problems = fp<{ metrics: ServiceMetrics }>(async (app, { metrics }) => {
  app.setErrorHandler((err: FastifyError, request, reply) => {
    const { code, detail, details } = errorOutcome(err, request.routeOptions.bodyLimit);
    const body = problemBody(code, detail, pathOf(request.url), details);
    if (body.status >= 500) request.log.error({ err }, 'request failed');
    metrics.errors.inc({ code });
    reply.code(body.status).type('application/problem+json');
    if (code === 'RATE_LIMITED') for (const [k, v] of Object.entries((err as { headers?: Record<string, string> }).headers ?? {})) reply.header(k, v);
    // A dependency that is away (or a model still loading): the client should come back shortly.
    if (body.status === 503) reply.header('retry-after', '5');
    return reply.send(body);
  });

  app.setNotFoundHandler((request, reply) => {
    metrics.errors.inc({ code: 'NOT_FOUND' });
    reply
      .code(404)
      .type('application/problem+json')
      .send(problemBody('NOT_FOUND', `no route ${request.method} ${pathOf(request.url)}; see /docs for the API`, pathOf(request.url)));
  });
});
