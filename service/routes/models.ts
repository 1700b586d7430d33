import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { ServiceContext } from '../app.ts';
import {
  ModelDescription,
  ModelParams,
  OnnxFile,
  Problem,
  UploadModelQuery,
  UploadModelRequest,
  VersionDescription,
  VersionParams,
  HistoryEventSchema,
  PromoteRequest,
  RolloutResponse,
} from './schemas.ts';
import { parseRequest, ServiceError } from '../errors.ts';
import type { ModelDescription as ModelDescriptionData, UploadInput } from '../serving/model-registry.ts';
import type { VersionMetadata } from '../store/model-store.ts';

// Model management: upload, list, describe, promote (rollback = promote an older one), delete.
// Writes need the API token (the `admin` route flag, checked once in app.ts).

/** A version as clients see it: without the internal input/output mapping. */
function publicVersion<T extends VersionMetadata>(meta: T): Omit<T, 'interface'> {
  const { interface: _internal, ...rest } = meta;
  return rest;
}

function publicModel(m: ModelDescriptionData) {
  return { ...m, versions: m.versions.map(publicVersion) };
}

function uploadFromJson(body: unknown, query: unknown): UploadInput {
  // The query is an octet-stream upload's; in a JSON upload it would be silently ignored.
  const given = Object.keys(query ?? {});
  if (given.length)
    throw new ServiceError(
      'VALIDATION_FAILED',
      `query parameters (${given.join(', ')}) are for application/octet-stream uploads; a JSON upload gives name, version, features, promote and metadata in the body`,
      given.map((k) => ({ field: `query.${k}`, message: `query.${k}: not accepted with application/json` })),
    );
  const req = parseRequest(UploadModelRequest, body, 'body');
  return {
    name: req.name,
    version: req.version,
    bytes: Buffer.from(req.model_data, 'base64'),
    source: 'model_data',
    metadata: req.metadata,
    promote: req.promote,
    ...(req.features ? { features: req.features } : {}),
    ...(req.rollout ? { rollout: req.rollout } : {}),
  };
}

function uploadFromOctets(query: unknown, body: Buffer): UploadInput {
  const q = parseRequest(UploadModelQuery, query, 'query');
  let features: string[] | undefined;
  if (Array.isArray(q.features)) features = q.features;
  else if (q.features !== undefined) {
    const trimmed = q.features.trim();
    if (trimmed.startsWith('[')) {
      try {
        features = parseRequest(z.array(z.string().min(1)).min(1), JSON.parse(trimmed), 'query.features');
      } catch (err) {
        if (err instanceof ServiceError) throw err;
        throw new ServiceError('VALIDATION_FAILED', 'query.features: not a JSON array of names; send features=a&features=b or features=["a","b"]');
      }
    } else features = [trimmed];
  }
  let metadata: Record<string, unknown> = {};
  if (q.metadata !== undefined) {
    try {
      metadata = parseRequest(z.record(z.string(), z.unknown()), JSON.parse(q.metadata), 'query.metadata');
    } catch (err) {
      if (err instanceof ServiceError) throw err;
      throw new ServiceError('VALIDATION_FAILED', 'query.metadata must be a JSON object');
    }
  }
  if (body.length === 0) throw new ServiceError('VALIDATION_FAILED', 'the request body is empty; send the .onnx file as the body');
  return {
    name: q.name,
    version: q.version,
    bytes: body,
    source: 'the request body',
    metadata,
    promote: q.promote ?? false,
    ...(features ? { features } : {}),
  };
}

export const modelRoutes: FastifyPluginAsync<{ ctx: ServiceContext }> = async (fastify, { ctx }) => {
  const app = fastify.withTypeProvider<ZodTypeProvider>();
  const errors = { 400: Problem, 401: Problem, 404: Problem, 409: Problem };

  // The one route that takes raw bytes, and the upload's own body limit.
  await app.register(async (uploads) => {
    uploads.addContentTypeParser('application/octet-stream', { parseAs: 'buffer', bodyLimit: ctx.config.BODY_LIMIT_BYTES }, (_req, body, done) =>
      done(null, body),
    );
    uploads.withTypeProvider<ZodTypeProvider>().post(
      '/api/v1/models',
      {
        bodyLimit: ctx.config.BODY_LIMIT_BYTES,
        config: { admin: true, rateLimitClass: 'upload' },
        schema: {
          operationId: 'uploadModel',
          tags: ['models'],
          summary: 'Upload a model version',
          description:
            'Two forms: application/json with the .onnx file base64-encoded in model_data (no query parameters), or the raw .onnx as application/octet-stream with name, version, features, promote and metadata in the query. A new version answers 201; the same bytes again under the same version (a retry) answer 200 with the stored version; other bytes under a stored version, 409.',
          body: { content: { 'application/json': { schema: UploadModelRequest }, 'application/octet-stream': { schema: OnnxFile } } },
          querystring: UploadModelQuery.partial(),
          response: {
            201: VersionDescription,
            200: VersionDescription.describe('The same bytes were already stored under this version (a retry): the stored version'),
            ...errors,
            413: Problem,
            503: Problem,
          },
        },
        // Both bodies are validated in the handler: the schema above documents them.
        validatorCompiler: () => (data) => ({ value: data }),
      },
      async (request: FastifyRequest, reply) => {
        const input = Buffer.isBuffer(request.body) ? uploadFromOctets(request.query, request.body) : uploadFromJson(request.body, request.query);
        const isFirst = (await ctx.store.listVersions(input.name)).length === 0;
        if (input.rollout && input.promote)
          throw new ServiceError('VALIDATION_FAILED', 'give promote (serve at once) or rollout (a canary or shadow first), not both');
        const { meta, stored } = await ctx.registry.upload(input);
        if (ctx.modelVersions) {
          // Kubernetes mode: the ModelVersion makes it real; without it the artifact is not kept.
          try {
            await ctx.modelVersions.create(meta, input.promote || input.rollout || isFirst ? 'Production' : 'Staging', input.rollout);
          } catch (err) {
            // Only what this request stored goes (a retry's version was stored before).
            if (stored) await ctx.registry.deleteVersion(meta.name, meta.version).catch(() => undefined);
            if (err instanceof ServiceError && err.code !== 'KUBERNETES_UNAVAILABLE') throw err;
            throw new ServiceError(
              'KUBERNETES_UNAVAILABLE',
              `the model was valid but its ModelVersion could not be created (${(err as Error).message}); nothing was kept, try again`,
            );
          }
        }
        request.log.info(
          { model: meta.name, version: meta.version, sizeBytes: meta.sizeBytes, sha256: meta.sha256 },
          stored ? 'model version uploaded' : 'model version uploaded again with the same bytes',
        );
        // Standalone: a rollout of a new version against the production one (a first version serves at once).
        if (!ctx.modelVersions && input.rollout && stored && !isFirst) await ctx.rollouts.start(meta.name, meta.version, input.rollout);
        reply.code(stored ? 201 : 200).header('location', `/api/v1/models/${meta.name}`);
        const desc = await ctx.registry.describe(meta.name);
        return publicVersion(desc.versions.find((v) => v.version === meta.version) ?? meta);
      },
    );
  });

  app.get(
    '/api/v1/models',
    {
      schema: {
        operationId: 'listModels',
        tags: ['models'],
        summary: 'Every model with its versions',
        response: { 200: z.object({ models: z.array(ModelDescription) }) },
      },
    },
    async () => {
      const models = await ctx.registry.listModels();
      return { models: models.map(publicModel) };
    },
  );

  app.get(
    '/api/v1/models/:model_id',
    {
      schema: {
        operationId: 'getModel',
        tags: ['models'],
        summary: 'A model: production version, every version, history',
        params: ModelParams,
        response: { 200: ModelDescription, 404: Problem },
      },
    },
    async (request) => {
      return publicModel(await ctx.registry.describe(request.params.model_id));
    },
  );

  app.post(
    '/api/v1/models/:model_id/versions/:version/promote',
    {
      config: { admin: true },
      schema: {
        operationId: 'promoteModelVersion',
        tags: ['models'],
        summary: 'Serve this version (rollback: promote an older one), at once or through a canary or shadow rollout',
        description:
          'Without a body, or without rollout, the version serves at once. With {"rollout": {"strategy": "Canary", "steps": [5, 25, 50, 100], "interval": "1m", "analysis": {...}}} it takes a growing share of the traffic and is promoted when every step passes, or rolled back on its own when a check fails (202, the rollout; GET /api/v1/models/{model_id}/rollout follows it).',
        params: VersionParams,
        body: PromoteRequest.nullish(),
        'x-body-optional': true,
        response: {
          200: HistoryEventSchema,
          202: z
            .union([HistoryEventSchema.extend({ requested: z.boolean() }), RolloutResponse])
            .describe('Kubernetes mode: the ModelVersion asked to; or the rollout started'),
          ...errors,
        },
      },
    },
    async (request, reply) => {
      const { model_id, version } = request.params;
      const rollout = request.body?.rollout;
      if (!ctx.modelVersions) {
        if (!rollout) return ctx.registry.promote(model_id, version);
        if (!(await ctx.store.hasVersion(model_id, version))) throw new ServiceError('VERSION_NOT_FOUND', `model ${model_id} has no version "${version}"`);
        const started = await ctx.rollouts.start(model_id, version, rollout);
        reply.code(202);
        return { model: model_id, version: started.version, rollout: started.status };
      }
      if (!(await ctx.store.hasVersion(model_id, version))) throw new ServiceError('VERSION_NOT_FOUND', `model ${model_id} has no version "${version}"`);
      await ctx.modelVersions.setStage(model_id, version, 'Production', rollout);
      reply.code(202);
      return { time: new Date().toISOString(), event: 'promoted' as const, version, requested: true };
    },
  );

  // Standalone rollouts (under the operator they are ModelVersions' spec.rollout and status.rollout).
  const inKubernetes = (model: string) =>
    new ServiceError(
      'MANAGED_BY_KUBERNETES',
      `rollouts are ModelVersions' spec.rollout here: kubectl get mv -l serving.analytics.dev/model=${model} shows each version's weight and step, status.rollout the figures`,
    );

  app.get(
    '/api/v1/models/:model_id/rollout',
    {
      schema: {
        operationId: 'getRollout',
        tags: ['models'],
        summary: "The model's running rollout (or its last one): step, weight, the figures of the step, the check that failed",
        params: ModelParams,
        response: { 200: RolloutResponse, ...errors },
      },
    },
    async (request) => {
      const { model_id } = request.params;
      if (ctx.modelVersions) throw inKubernetes(model_id);
      const r = ctx.rollouts.get(model_id);
      if (!r)
        throw new ServiceError(
          'ROLLOUT_NOT_FOUND',
          `model ${model_id} has had no rollout since the service started; start one with POST /api/v1/models/${model_id}/versions/{version}/promote and a rollout`,
        );
      return { model: model_id, version: r.version, rollout: r.status };
    },
  );

  app.delete(
    '/api/v1/models/:model_id/rollout',
    {
      config: { admin: true },
      schema: {
        operationId: 'abortRollout',
        tags: ['models'],
        summary: 'Abort the running rollout: the canary stops taking traffic, the production version keeps serving',
        params: ModelParams,
        response: { 200: RolloutResponse, ...errors },
      },
    },
    async (request) => {
      const { model_id } = request.params;
      if (ctx.modelVersions) throw inKubernetes(model_id);
      const r = await ctx.rollouts.abort(model_id);
      return { model: model_id, version: r.version, rollout: r.status };
    },
  );

  app.delete(
    '/api/v1/models/:model_id/versions/:version',
    {
      config: { admin: true },
      schema: {
        operationId: 'deleteModelVersion',
        tags: ['models'],
        summary: 'Delete a version that is not in production',
        params: VersionParams,
        response: { 204: z.null().describe('Deleted; the answer has no body'), ...errors },
      },
    },
    async (request, reply) => {
      if (ctx.modelVersions)
        throw new ServiceError(
          'MANAGED_BY_KUBERNETES',
          `versions are ModelVersion resources here: kubectl delete mv -l serving.analytics.dev/model=${request.params.model_id} (or archive it)`,
        );
      await ctx.registry.deleteVersion(request.params.model_id, request.params.version);
      reply.code(204).send(null);
    },
  );
};
