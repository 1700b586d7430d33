import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { ServiceContext } from '../app.ts';
import { errorCatalog, parseRequest, ServiceError } from '../errors.ts';
import { errorOutcome } from '../http/problems.ts';
import type { ServedModel } from '../inference/served-model.ts';
import type { PlainTensor } from '../inference/tensor.ts';
import { binaryData, decodeInput, jsonData, v2Datatype, v2Shape, type V2InputRequest } from './tensors.ts';

// The Open Inference Protocol (KServe V2, Triton) over REST, so KServe and Triton clients work
// unchanged: health, server and model metadata, readiness and infer, with Triton's binary
// tensor data extension (a JSON header of Inference-Header-Content-Length bytes, then raw tensors).
// Errors are {"error": "..."} with a 4xx, as the protocol has them.

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

type ModelRoute = { name: string; version?: string };

function describeTensors(values: ServedModel['meta']['signature']['inputs']) {
  return values.map((v) => ({ name: v.name, datatype: v2Datatype(v.type) ?? String(v.type), shape: v2Shape(v.shape) }));
}

function parseBody(request: FastifyRequest): { header: unknown; binary: Buffer } {
  const body = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
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

  const resolve = async ({ name, version }: ModelRoute): Promise<ServedModel> => ctx.registry.resolve(version === undefined ? name : `${name}@${version}`);

  app.get('/v2', { schema: { tags: ['v2'], summary: 'Server metadata' } }, async () => ({
    name: 'analytics-api',
    version: ctx.serviceVersion,
    extensions: ['binary_tensor_data', 'model_repository'],
  }));
  app.get('/v2/health/live', { schema: { tags: ['v2'] } }, async () => ({ live: true }));
  app.get('/v2/health/ready', { schema: { tags: ['v2'] } }, async (_req, reply) => {
    const ready = ctx.registry.ready();
    reply.code(ready ? 200 : 503);
    return { ready };
  });

  const metadata = async (route: ModelRoute) => {
    const served = await resolve(route);
    const description = await ctx.registry.describe(served.meta.name);
    return {
      name: served.meta.name,
      versions: description.versions.map((v) => v.version),
      platform: 'onnx_onnxv1',
      inputs: describeTensors(served.meta.signature.inputs),
      outputs: describeTensors(served.meta.signature.outputs),
    };
  };
  const ready = async (route: ModelRoute, reply: FastifyReply) => {
    try {
      await resolve(route);
      return { name: route.name, ready: true };
    } catch (err) {
      if (err instanceof ServiceError && err.code === 'MODEL_NOT_LOADED') {
        reply.code(400);
        return { name: route.name, ready: false };
      }
      throw err;
    }
  };
  const params = (p: unknown) => p as { name: string; version?: string };
  app.get('/v2/models/:name', { schema: { tags: ['v2'], summary: 'Model metadata' } }, async (req) => metadata(params(req.params)));
  app.get('/v2/models/:name/versions/:version', { schema: { tags: ['v2'], summary: 'Model version metadata' } }, async (req) => metadata(params(req.params)));
  app.get('/v2/models/:name/ready', { schema: { tags: ['v2'] } }, async (req, reply) => ready(params(req.params), reply));
  app.get('/v2/models/:name/versions/:version/ready', { schema: { tags: ['v2'] } }, async (req, reply) => ready(params(req.params), reply));

  const infer = async (request: FastifyRequest, reply: FastifyReply) => {
    const { header, binary } = parseBody(request);
    const req = parseRequest(InferRequest, header, 'request');
    const served = await resolve(params(request.params));
    const { inputs: modelInputs, outputs: modelOutputs } = served.meta.signature;

    const feeds: Record<string, PlainTensor> = {};
    let offset = 0;
    for (const input of req.inputs) {
      const expected = modelInputs.find((i) => i.name === input.name);
      if (!expected)
        throw new ServiceError('VALIDATION_FAILED', `unknown input "${input.name}"; the model's inputs are ${modelInputs.map((i) => i.name).join(', ')}`);
      if (feeds[input.name]) throw new ServiceError('VALIDATION_FAILED', `input "${input.name}" is given twice`);
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
      feeds[input.name] = decodeInput(input as V2InputRequest, expected, bytes);
    }
    const missing = modelInputs.filter((i) => !feeds[i.name]).map((i) => i.name);
    if (missing.length) throw new ServiceError('VALIDATION_FAILED', `missing inputs: ${missing.join(', ')}`);
    const batchSizes = new Set(Object.values(feeds).map((t) => t.dims[0]));
    if (batchSizes.size > 1) throw new ServiceError('VALIDATION_FAILED', `inputs disagree on the batch dimension: ${[...batchSizes].join(' vs ')}`);

    const requested = req.outputs ?? modelOutputs.filter((o) => o.isTensor).map((o) => ({ name: o.name, parameters: undefined }));
    for (const o of requested) {
      if (!modelOutputs.some((m) => m.name === o.name))
        throw new ServiceError('VALIDATION_FAILED', `unknown output "${o.name}"; the model's outputs are ${modelOutputs.map((m) => m.name).join(', ')}`);
    }
    const outputs = await served.infer(
      feeds,
      requested.map((o) => o.name),
    );

    const binaryDefault = req.parameters?.binary_data_output === true;
    const chunks: Uint8Array[] = [];
    const described = requested.map((o) => {
      const t = outputs[o.name]!;
      const base = { name: o.name, datatype: v2Datatype(t.type) ?? t.type, shape: t.dims };
      const asBinary = (o.parameters?.binary_data as boolean | undefined) ?? binaryDefault;
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
