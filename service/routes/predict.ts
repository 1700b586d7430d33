import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type { ServiceContext } from '../app.ts';
import {
  BatchPredictionRequest,
  BatchPredictionResponse,
  FeedbackRequest,
  FeedbackResponse,
  ModelParams,
  PredictionRequest,
  PredictionResponse,
  Problem,
} from './schemas.ts';
import { BATCH_BODY_LIMIT_BYTES, ROW_BODY_LIMIT_BYTES } from '../http/body-limits.ts';
import { ServiceError } from '../errors.ts';
import type { ServedModel } from '../inference/served-model.ts';
import type { Answer } from '../prediction/predictor.ts';

/** The time as ISO 8601, made once per millisecond however many answers quote it. */
let lastMs = 0;
let lastIso = '';
function isoNow(): string {
  const ms = Date.now();
  if (ms !== lastMs) {
    lastMs = ms;
    lastIso = new Date(ms).toISOString();
  }
  return lastIso;
}

// Predictions: the specification's PredictionRequest → PredictionResponse, and a batch form.
// "{name}@{version}" in the path pins a version. Feedback: the true outcome of a prediction.

function checkBodyModel(pathId: string, bodyId: string | undefined): void {
  if (bodyId !== undefined && bodyId !== pathId)
    throw new ServiceError('MODEL_ID_MISMATCH', `model_id in the body is "${bodyId}" but the path names "${pathId}"; drop it or make them equal`);
}

export const predictRoutes: FastifyPluginAsync<{ ctx: ServiceContext }> = async (fastify, { ctx }) => {
  const app = fastify.withTypeProvider<ZodTypeProvider>();
  // During a canary, the same key stays on the same version (CANARY_KEY_HEADER).
  const header = ctx.config.CANARY_KEY_HEADER;
  const canaryKey = (headers: Record<string, string | string[] | undefined>) => {
    const v = headers[header];
    return typeof v === 'string' ? v : undefined;
  };

  app.post(
    '/api/v1/predict/:model_id',
    {
      bodyLimit: ROW_BODY_LIMIT_BYTES,
      config: { rateLimitClass: 'predict' },
      schema: {
        operationId: 'predict',
        tags: ['predictions'],
        summary: 'Predict one row of named features',
        params: ModelParams,
        body: PredictionRequest,
        response: { 200: PredictionResponse, 400: Problem, 404: Problem, 503: Problem },
      },
    },
    // Not async: a cached answer held in this process is written without a promise (the hot path).
    (request, reply) => {
      const { model_id } = request.params;
      checkBodyModel(model_id, request.body.model_id);
      const { features } = request.body;
      const answer = (served: ServedModel, a: Answer) => {
        const shadow = ctx.registry.shadowOf(served);
        if (shadow) ctx.predictor.shadow(shadow, [features], [a.result]);
        reply.header('x-cache', a.cache);
        const r = a.result;
        return {
          prediction: r.prediction,
          confidence: r.confidence,
          label: r.label,
          probabilities: r.probabilities,
          timestamp: isoNow(),
          model_version: served.meta.version,
          model_id: served.meta.name,
          prediction_id: a.predictionId,
        };
      };
      const served = ctx.registry.servingNow(model_id);
      if (served === undefined)
        return ctx.registry.resolveServing(model_id, canaryKey(request.headers)).then(async (s) => answer(s, await ctx.predictor.predict(s, features)));
      const a = ctx.predictor.predict(served, features);
      return a instanceof Promise ? a.then((x) => answer(served, x)) : answer(served, a);
    },
  );

  app.post(
    '/api/v1/predict/:model_id/batch',
    {
      bodyLimit: BATCH_BODY_LIMIT_BYTES,
      config: { rateLimitClass: 'predict' },
      schema: {
        operationId: 'predictBatch',
        tags: ['predictions'],
        summary: 'Predict many rows in one ONNX run',
        params: ModelParams,
        body: BatchPredictionRequest,
        response: { 200: BatchPredictionResponse, 400: Problem, 404: Problem, 503: Problem },
      },
    },
    async (request) => {
      const { model_id } = request.params;
      checkBodyModel(model_id, request.body.model_id);
      const served = await ctx.registry.resolveServing(model_id, canaryKey(request.headers));
      const { results, predictionIds } = await ctx.predictor.predictBatch(served, request.body.instances);
      const shadow = ctx.registry.shadowOf(served);
      if (shadow) ctx.predictor.shadow(shadow, request.body.instances, results);
      return {
        predictions: results,
        timestamp: isoNow(),
        model_version: served.meta.version,
        model_id: served.meta.name,
        prediction_ids: predictionIds,
      };
    },
  );

  app.post(
    '/api/v1/feedback',
    {
      config: { rateLimitClass: 'predict' },
      schema: {
        operationId: 'sendFeedback',
        tags: ['predictions'],
        summary: 'The true outcome of an earlier prediction: feeds the accuracy (classifiers) and absolute error (regressors) metrics',
        body: FeedbackRequest,
        response: { 200: FeedbackResponse, 400: Problem, 404: Problem },
      },
    },
    async (request) => ctx.predictor.feedback(request.body),
  );
};
