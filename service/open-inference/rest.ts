import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { ServiceContext } from '../app.ts';
import { compiled } from '../compiled-schemas.ts';
import { errorCatalog, parseRequest, ServiceError } from '../errors.ts';
import { errorOutcome } from '../http/problems.ts';
import { type InferInput, type ModelRef, OpenInference } from './dataplane.ts';
import { BATCH_BODY_LIMIT_BYTES } from '../http/body-limits.ts';
import { binaryData, decodeInput, jsonData, v2Datatype, type V2InputRequest } from './tensors.ts';

// The Open Inference Protocol (KServe V2, Triton) over REST, so KServe and Triton clients work
// unchanged: health, server and model metadata, readiness and infer, with Triton's binary
// tensor data extension (a JSON header of Inference-Header-Content-Length bytes, then raw tensors).
// Errors are {"error": "..."} with a 4xx, as the protocol has them. Also Triton's model
// repository extension (index, load, unload), model configuration and statistics.

// compiled(): checked by Ajv on the hot path (compiled-schemas.ts); unknown keys are not stripped then, and nothing reads them.
const InferRequest = compiled(
  z
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
    .describe('Open Inference Protocol inference request')
    .meta({ example: { inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: [5.3, 3.7, 1.5, 0.2] }] } }),
);

// What the document says about these routes (the handlers shape the answers themselves).
export const V2Error = z.object({ error: z.string() }).describe('Open Inference Protocol error');
const Tensor = z.object({ name: z.string(), datatype: z.string(), shape: z.array(z.number()) });
const InferResponse = z
  .object({
    model_name: z.string(),
    model_version: z.string(),
    id: z.string().optional(),
    outputs: z.array(
      Tensor.extend({
        data: z.array(z.unknown()).optional(),
        parameters: z.object({ binary_data_size: z.number() }).optional().describe('With binary_data: the tensor is in the binary part'),
      }),
    ),
  })
  .describe('Open Inference Protocol inference response');
const BinaryInfer = z.string().meta({
  format: 'binary',
  description:
    "Triton's binary tensor data extension: the JSON request (Inference-Header-Content-Length bytes), then each input's raw bytes (its parameters.binary_data_size)",
});
const BinaryInferResponse = z.string().meta({
  format: 'binary',
  description: "With binary_data outputs: the JSON response (Inference-Header-Content-Length bytes), then each such output's raw bytes",
});
const ModelMetadata = z.object({ name: z.string(), versions: z.array(z.string()), platform: z.string(), inputs: z.array(Tensor), outputs: z.array(Tensor) });
const ModelReady = z.object({ name: z.string(), ready: z.boolean() });
const name = z.string().meta({ description: 'Model name', example: 'iris-logreg' });
const NameParams = z.object({ name });
const VersionParams = z.object({ name, version: z.string().meta({ example: '1' }) });
const InferHeaders = z.object({
  'inference-header-content-length': z.string().optional().describe('Binary tensor data: the length of the JSON part; without it the whole body is JSON'),
});

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
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: BATCH_BODY_LIMIT_BYTES }, (_req, body, done) => done(null, body));

  app.setErrorHandler((err: Error, request, reply) => {
    const { code, detail } = errorOutcome(err, request.routeOptions.bodyLimit);
    const { status } = errorCatalog[code];
    if (status >= 500) request.log.error({ err }, 'V2 request failed');
    ctx.metrics.errors.inc({ code });
    if (status === 503) reply.header('retry-after', '5');
    reply.code(status).send({ error: detail });
  });

  const oip = new OpenInference(ctx);
  const params = (p: unknown) => p as ModelRef;
  // Bodies are read and checked by the handlers (JSON or binary); the schemas document them.
  const unchecked = () => (data: unknown) => ({ value: data });

  const ServerMetadata = z.object({ name: z.string(), version: z.string(), extensions: z.array(z.string()) });
  app.get('/v2', { schema: { operationId: 'serverMetadata', tags: ['v2'], summary: 'Server metadata', response: { 200: ServerMetadata } } }, async () =>
    oip.serverMetadata(),
  );
  app.get(
    '/v2/health/live',
    { schema: { operationId: 'serverLive', tags: ['v2'], summary: 'Liveness', response: { 200: z.object({ live: z.boolean() }) } } },
    async () => ({ live: true }),
  );
  const ServerReady = z.object({ ready: z.boolean() });
  const serverReady = { 200: ServerReady, 503: ServerReady.describe('A production model is not loaded (yet)') };
  app.get('/v2/health/ready', { schema: { operationId: 'serverReady', tags: ['v2'], summary: 'Readiness', response: serverReady } }, async (_req, reply) => {
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
  const errors = { 400: V2Error, 404: V2Error, 503: V2Error };
  const TensorConfig = z.object({ name: z.string(), data_type: z.string().describe("Triton's TYPE_FP32, TYPE_INT64, ..."), dims: z.array(z.number()) });
  const config = {
    200: z.object({
      name: z.string(),
      platform: z.string(),
      backend: z.string(),
      max_batch_size: z.number(),
      input: z.array(TensorConfig),
      output: z.array(TensorConfig),
    }),
    ...errors,
  };
  const stats = {
    200: z.object({ model_stats: z.array(z.record(z.string(), z.unknown()).describe("One model version's figures, as Triton's ModelStatistics")) }),
    ...errors,
  };
  const metadataResponse = { 200: ModelMetadata, ...errors };
  const readyResponse = { 200: ModelReady, ...errors, 400: ModelReady.describe('Known but not loaded (yet)') };
  app.get(
    '/v2/models/:name',
    { schema: { operationId: 'modelMetadata', tags: ['v2'], summary: 'Model metadata', params: NameParams, response: metadataResponse } },
    async (req) => oip.modelMetadata(params(req.params)),
  );
  app.get(
    '/v2/models/:name/versions/:version',
    {
      schema: {
        operationId: 'modelVersionMetadata',
        tags: ['v2'],
        summary: 'Model version metadata (read from the store, not loaded)',
        params: VersionParams,
        response: metadataResponse,
      },
    },
    async (req) => oip.modelMetadata(params(req.params)),
  );
  app.get(
    '/v2/models/:name/ready',
    { schema: { operationId: 'modelReady', tags: ['v2'], summary: 'Model readiness', params: NameParams, response: readyResponse } },
    async (req, reply) => ready(params(req.params), reply),
  );
  app.get(
    '/v2/models/:name/versions/:version/ready',
    { schema: { operationId: 'modelVersionReady', tags: ['v2'], summary: 'Model version readiness', params: VersionParams, response: readyResponse } },
    async (req, reply) => ready(params(req.params), reply),
  );
  app.get(
    '/v2/models/:name/config',
    { schema: { operationId: 'modelConfig', tags: ['v2'], summary: "Triton's model configuration", params: NameParams, response: config } },
    async (req) => oip.modelConfig(params(req.params)),
  );
  app.get(
    '/v2/models/:name/versions/:version/config',
    {
      schema: {
        operationId: 'modelVersionConfig',
        tags: ['v2'],
        summary: "Triton's model configuration of a version",
        params: VersionParams,
        response: config,
      },
    },
    async (req) => oip.modelConfig(params(req.params)),
  );
  app.get(
    '/v2/models/stats',
    { schema: { operationId: 'modelsStatistics', tags: ['v2'], summary: "Triton's inference statistics of every model", response: { 200: stats[200] } } },
    async () => ({
      model_stats: await oip.modelStatistics({ name: '' }),
    }),
  );
  app.get(
    '/v2/models/:name/stats',
    { schema: { operationId: 'modelStatistics', tags: ['v2'], summary: "Triton's inference statistics of a model", params: NameParams, response: stats } },
    async (req) => ({ model_stats: await oip.modelStatistics(params(req.params)) }),
  );
  app.get(
    '/v2/models/:name/versions/:version/stats',
    {
      schema: {
        operationId: 'modelVersionStatistics',
        tags: ['v2'],
        summary: "Triton's inference statistics of a version",
        params: VersionParams,
        response: stats,
      },
    },
    async (req) => ({ model_stats: await oip.modelStatistics(params(req.params)) }),
  );

  // The model repository extension (Triton's): the index, and load / unload of a model's production version.
  app.post(
    '/v2/repository/index',
    {
      schema: {
        operationId: 'repositoryIndex',
        tags: ['v2'],
        summary: 'Every model with its production version and state',
        body: RepositoryIndexRequest.optional(),
        'x-body-optional': true,
        response: {
          200: z.array(z.object({ name: z.string(), version: z.string(), state: z.enum(['READY', 'UNAVAILABLE']), reason: z.string() })),
          400: V2Error,
        },
      },
      validatorCompiler: unchecked,
    },
    async (req) => {
      const { header } = parseBody(req, true);
      // No body is {}; a body that is not an object (null, a number) is a 400.
      const body = parseRequest(RepositoryIndexRequest, header === undefined ? {} : header, 'request');
      return oip.repositoryIndex(body.ready ?? false);
    },
  );
  const repositoryAction = (action: 'load' | 'unload') => async (req: FastifyRequest, reply: FastifyReply) => {
    const { header } = parseBody(req, true);
    parseRequest(RepositoryActionRequest, header === undefined ? {} : header, 'request');
    const { name } = req.params as { name: string };
    await (action === 'load' ? oip.load(name) : oip.unload(name));
    return reply.code(200).send();
  };
  for (const action of ['load', 'unload'] as const) {
    app.post(
      `/v2/repository/models/:name/${action}`,
      {
        config: { admin: true },
        validatorCompiler: unchecked,
        schema: {
          operationId: action === 'load' ? 'repositoryModelLoad' : 'repositoryModelUnload',
          tags: ['v2'],
          params: NameParams,
          body: RepositoryActionRequest.optional(),
          'x-body-optional': true,
          response: { 200: z.null().describe('Done'), ...errors, 409: V2Error.describe('Kubernetes mode: the ModelVersions decide') },
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
  const inferSchema = {
    tags: ['v2'],
    description:
      "JSON, or Triton's binary tensor data extension (Inference-Header-Content-Length; parameters.binary_data_size per input, binary_data / binary_data_output for outputs). Any content type, or none, is read this way.",
    headers: InferHeaders,
    body: { content: { 'application/json': { schema: InferRequest }, 'application/octet-stream': { schema: BinaryInfer } } },
    response: { 200: { content: { 'application/json': { schema: InferResponse }, 'application/octet-stream': { schema: BinaryInferResponse } } }, ...errors },
  };
  app.post(
    '/v2/models/:name/infer',
    {
      config: { rateLimitClass: 'predict' },
      schema: { ...inferSchema, operationId: 'modelInfer', summary: 'Inference', params: NameParams },
      validatorCompiler: unchecked,
    },
    infer,
  );
  app.post(
    '/v2/models/:name/versions/:version/infer',
    {
      config: { rateLimitClass: 'predict' },
      schema: { ...inferSchema, operationId: 'modelVersionInfer', summary: 'Inference on a version', params: VersionParams },
      validatorCompiler: unchecked,
    },
    infer,
  );
};
