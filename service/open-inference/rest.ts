import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { ServiceContext } from '../app.ts';
import { errorCatalog, parseRequest, ServiceError } from '../errors.ts';
import { errorOutcome } from '../http/problems.ts';
import { type InferInput, type ModelRef, OpenInference } from './dataplane.ts';
import { binaryData, decodeInput, jsonData, v2Datatype, type V2InputRequest } from './tensors.ts';

// The Open Inference Protocol (KServe V2, Triton) over REST, so KServe and Triton clients work
// unchanged: health, server and model metadata, readiness and infer, with Triton's binary
// tensor data extension (a JSON header of Inference-Header-Content-Length bytes, then raw tensors).
// Errors are {"error": "..."} with a 4xx, as the protocol has them. Also Triton's model
// repository extension (index, load, unload), model configuration and statistics.

const InferRequest = z
  .object({
    id: z.string().optional(),
    parameters: z.record(z.string(), z.unknown()).optional(),
    inputs: z
      .array(
        z.object({
          name: z.string(),
          shape: z.array(z.number().int().nonnegative()),
          datatype: z.string(),
          parameters: z.record(z.string(), z.unknown()).optional(),
          data: z.unknown().optional(),
        }),
      )
      .min(1),
    outputs: z.array(z.object({ name: z.string(), parameters: z.record(z.string(), z.unknown()).optional() })).optional(),
  })
  .describe('Open Inference Protocol inference request');

const RepositoryIndexRequest = z.object({ ready: z.boolean().optional() }).describe('Model repository index request');
const RepositoryActionRequest = z
  .object({ parameters: z.record(z.string(), z.unknown()).optional() })
  .describe('Model repository load or unload request (parameters are accepted and ignored)');

/** The JSON header of a V2 body and the binary data after it; with `optional`, an empty body is no header. */
function parseBody(request: FastifyRequest, optional = false): { header: unknown; binary: Buffer } {
  const body = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
  if (optional && body.length === 0) return { header: undefined, binary: body };
  const lengthHeader = request.headers['inference-header-content-length'];
  const jsonLength = lengthHeader === undefined ? body.length : Number(lengthHeader);
  if (!Number.isInteger(jsonLength) || jsonLength < 0 || jsonLength > body.length)
    throw new ServiceError('VALIDATION_FAILED', `Inference-Header-Content-Length ${String(lengthHeader)} does not fit a body of ${body.length} bytes`);
  let header: unknown;
  try {
    header = JSON.parse(body.subarray(0, jsonLength).toString('utf8'));
  } catch {
    throw new ServiceError('VALIDATION_FAILED', 'the inference request header is not valid JSON');
  }
  return { header, binary: body.subarray(jsonLength) };
}

export const openInferenceRoutes: FastifyPluginAsync<{ ctx: ServiceContext }> = async (app, { ctx }) => {
  // Every body as bytes: JSON and binary requests alike, with or without a content type (tritonclient sends none).
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: ctx.config.BODY_LIMIT_BYTES }, (_req, body, done) => done(null, body));

  app.setErrorHandler((err: Error, request, reply) => {
    const { code, detail } = errorOutcome(err);
    const { status } = errorCatalog[code];
    if (status >= 500) request.log.error({ err }, 'V2 request failed');
    ctx.metrics.errors.inc({ code });
    reply.code(status).send({ error: detail });
  });

  const oip = new OpenInference(ctx);
  const params = (p: unknown) => p as ModelRef;

  app.get('/v2', { schema: { tags: ['v2'], summary: 'Server metadata' } }, async () => oip.serverMetadata());
  app.get('/v2/health/live', { schema: { tags: ['v2'] } }, async () => ({ live: true }));
  app.get('/v2/health/ready', { schema: { tags: ['v2'] } }, async (_req, reply) => {
    const ready = oip.serverReady();
    reply.code(ready ? 200 : 503);
    return { ready };
  });

  const ready = async (route: ModelRef, reply: FastifyReply) => {
    const isReady = await oip.modelReady(route);
    // Triton and KServe answer a model that is not ready with a 4xx and {"ready": false}.
    if (!isReady) reply.code(400);
    return { name: route.name, ready: isReady };
  };
  app.get('/v2/models/:name', { schema: { tags: ['v2'], summary: 'Model metadata' } }, async (req) => oip.modelMetadata(params(req.params)));
  app.get(
    '/v2/models/:name/versions/:version',
    { schema: { tags: ['v2'], summary: 'Model version metadata (read from the store, not loaded)' } },
    async (req) => oip.modelMetadata(params(req.params)),
  );
  app.get('/v2/models/:name/ready', { schema: { tags: ['v2'] } }, async (req, reply) => ready(params(req.params), reply));
  app.get('/v2/models/:name/versions/:version/ready', { schema: { tags: ['v2'] } }, async (req, reply) => ready(params(req.params), reply));
  app.get('/v2/models/:name/config', { schema: { tags: ['v2'], summary: "Triton's model configuration" } }, async (req) => oip.modelConfig(params(req.params)));
  app.get('/v2/models/:name/versions/:version/config', { schema: { tags: ['v2'] } }, async (req) => oip.modelConfig(params(req.params)));
  app.get('/v2/models/stats', { schema: { tags: ['v2'], summary: "Triton's inference statistics of every model" } }, async () => ({
    model_stats: await oip.modelStatistics({ name: '' }),
  }));
  app.get('/v2/models/:name/stats', { schema: { tags: ['v2'], summary: "Triton's inference statistics of a model" } }, async (req) => ({
    model_stats: await oip.modelStatistics(params(req.params)),
  }));
  app.get('/v2/models/:name/versions/:version/stats', { schema: { tags: ['v2'] } }, async (req) => ({
    model_stats: await oip.modelStatistics(params(req.params)),
  }));

  // The model repository extension (Triton's): the index, and load / unload of a model's production version.
  app.post('/v2/repository/index', { schema: { tags: ['v2'], summary: 'Every model with its production version and state' } }, async (req) => {
    const { header } = parseBody(req, true);
    const body = parseRequest(RepositoryIndexRequest, header ?? {}, 'request');
    return oip.repositoryIndex(body.ready ?? false);
  });
  const repositoryAction = (action: 'load' | 'unload') => async (req: FastifyRequest, reply: FastifyReply) => {
    const { header } = parseBody(req, true);
    parseRequest(RepositoryActionRequest, header ?? {}, 'request');
    const { name } = req.params as { name: string };
    await (action === 'load' ? oip.load(name) : oip.unload(name));
    return reply.code(200).send();
  };
  for (const action of ['load', 'unload'] as const) {
    app.post(
      `/v2/repository/models/:name/${action}`,
      {
        config: { admin: true },
        schema: {
          tags: ['v2'],
          summary:
            action === 'load'
              ? "Serve the model's production version again (standalone mode)"
              : "Stop serving the model's production version until it is loaded again (standalone mode; not kept across a restart)",
        },
      },
      repositoryAction(action),
    );
  }

  const infer = async (request: FastifyRequest, reply: FastifyReply) => {
    const { header, binary } = parseBody(request);
    const req = parseRequest(InferRequest, header, 'request');
    let offset = 0;
    const inputs: InferInput[] = req.inputs.map((input) => {
      const size = input.parameters?.binary_data_size;
      let bytes: Uint8Array | undefined;
      if (size !== undefined) {
        if (typeof size !== 'number' || !Number.isInteger(size) || size < 0 || offset + size > binary.length)
          throw new ServiceError(
            'VALIDATION_FAILED',
            `input "${input.name}": binary_data_size ${String(size)} runs past the ${binary.length} bytes of binary data`,
          );
        bytes = binary.subarray(offset, offset + size);
        offset += size;
      }
      return { name: input.name, decode: (expected) => decodeInput(input as V2InputRequest, expected, bytes) };
    });
    const { served, outputs } = await oip.infer(
      params(request.params),
      inputs,
      req.outputs?.map((o) => o.name),
    );

    const binaryDefault = req.parameters?.binary_data_output === true;
    const chunks: Uint8Array[] = [];
    const described = outputs.map(({ name, tensor: t }) => {
      const base = { name, datatype: v2Datatype(t.type) ?? t.type, shape: t.dims };
      const asBinary = (req.outputs?.find((o) => o.name === name)?.parameters?.binary_data as boolean | undefined) ?? binaryDefault;
      if (!asBinary) return { ...base, data: jsonData(t) };
      const bytes = binaryData(t);
      chunks.push(bytes);
      return { ...base, parameters: { binary_data_size: bytes.length } };
    });
    const response = { model_name: served.meta.name, model_version: served.meta.version, ...(req.id !== undefined ? { id: req.id } : {}), outputs: described };
    if (chunks.length === 0) return reply.type('application/json').send(response);
    const json = Buffer.from(JSON.stringify(response));
    reply.header('inference-header-content-length', json.length).type('application/octet-stream');
    return reply.send(Buffer.concat([json, ...chunks]));
  };
  app.post(
    '/v2/models/:name/infer',
    { config: { rateLimitClass: 'predict' }, schema: { tags: ['v2'], summary: 'Inference (JSON, or Triton binary tensor data)' } },
    infer,
  );
  app.post(
    '/v2/models/:name/versions/:version/infer',
    { config: { rateLimitClass: 'predict' }, schema: { tags: ['v2'], summary: 'Inference on a version' } },
    infer,
  );
};
