import Fastify, { type FastifyInstance } from 'fastify';
import { logOptions } from '../contract/logging.ts';
import { serializerCompiler, validatorCompiler } from './compiled-schemas.ts';
import type { Config } from './config.ts';
import { holdStore } from './store/store-holders.ts';
import { Rollouts } from './serving/rollouts.ts';
import { Admission, auth } from './http/auth.ts';
import { drainRefusedBodies, JSON_BODY_LIMIT_BYTES } from './http/body-limits.ts';
import { docs } from './http/docs.ts';
import { httpMetrics } from './http/metrics.ts';
import { problems, routerProblem } from './http/problems.ts';
import { rateLimit, RateLimiter } from './http/rate-limit.ts';
import { RequestLog } from './http/request-log.ts';
import { InferencePool } from './inference/inference-pool.ts';
import type { KubeConfig } from '@kubernetes/client-node';
import type { ModelVersionApi } from './kubernetes/routing-follower.ts';
import { usableCores } from './observability/cgroup.ts';
import { ServiceMetrics } from './observability/metrics.ts';
import { GrpcEndpoint } from './open-inference/grpc.ts';
import { openInferenceRoutes } from './open-inference/rest.ts';
import type { CacheBackend } from './prediction/cache.ts';
import { MemoryCache } from './prediction/memory-cache.ts';
import { MemoryPredictionLog, RedisPredictionLog, type PredictionLog } from './prediction/prediction-log.ts';
import { Predictor } from './prediction/predictor.ts';
import { RedisCache } from './prediction/redis-cache.ts';
import { RedisConnection } from './redis-client.ts';
import { shareMetrics } from './http-workers.ts';
import { healthRoutes } from './routes/health.ts';
import { modelRoutes } from './routes/models.ts';
import { predictRoutes } from './routes/predict.ts';
import { MAX_PATH_PARAMETER } from './routes/schemas.ts';
import { ModelRegistry } from './serving/model-registry.ts';
import { ModelStore } from './store/model-store.ts';
import { serviceVersion } from './version.ts';

// The one factory that builds the service: it makes the parts and composes the plugins. main.ts
// only reads config and listens; tests call buildApp() and app.inject().

export interface ServiceContext {
  config: Config;
  store: ModelStore;
  pool: InferencePool;
  registry: ModelRegistry;
  cache: CacheBackend;
  /** The shared Redis connection, when REDIS_URL is set. */
  redis: RedisConnection | undefined;
  predictor: Predictor;
  metrics: ServiceMetrics;
  serviceVersion: string;
  /** Kubernetes mode: ModelVersion calls for uploads and promotes. */
  modelVersions: ModelVersionApi | undefined;
  /** Who may change models (REST and gRPC). */
  admission: Admission;
  /** Per-client request budgets (REST and gRPC). */
  rateLimiter: RateLimiter;
  /** The Open Inference Protocol over gRPC (unless GRPC_PORT=off): main.ts, or a test, calls listen() after the HTTP listen. */
  grpc: GrpcEndpoint | undefined;
  /** Standalone canary and shadow rollouts (under the operator, ModelVersions' spec.rollout). */
  rollouts: Rollouts;
}

declare module 'fastify' {
  interface FastifyInstance {
    ctx: ServiceContext;
  }
}

export interface BuildOptions {
  config: Config;
  logger?: boolean | object;
  /** Kubernetes mode: the API server (default: in a pod its ServiceAccount, else the current kubeconfig). */
  kubeConfig?: KubeConfig;
  /** Kubernetes mode's ModelVersion calls (default: on that API server). */
  modelVersions?: ModelVersionApi;
}

export async function buildApp(options: BuildOptions): Promise<FastifyInstance> {
  const { config } = options;
  const app = Fastify({
    // Pretty at a terminal, JSON in a pod (contract/logging.ts); one line per request (http/request-log.ts).
    logger:
      options.logger ??
      logOptions({ level: config.LOG_LEVEL, format: config.LOG_FORMAT, redact: ['req.headers.authorization', 'body.model_data'], sync: false }),
    logController: new RequestLog(),
    bodyLimit: JSON_BODY_LIMIT_BYTES,
    // Slow or half-open clients do not hold sockets: headers and the whole request are timed
    // (Node checks them every connectionsCheckingInterval).
    requestTimeout: config.REQUEST_TIMEOUT_MS,
    http: {
      headersTimeout: Math.min(config.HEADERS_TIMEOUT_MS, config.REQUEST_TIMEOUT_MS),
      connectionsCheckingInterval: Math.max(100, Math.min(1_000, Math.floor(config.HEADERS_TIMEOUT_MS / 2))),
    },
    // Every name@version fits; past it, and for a bad URL, the router's answer is a problem too.
    routerOptions: { maxParamLength: MAX_PATH_PARAMETER },
    frameworkErrors: (err, request, reply) => routerProblem(err, request, reply, metrics),
    requestIdHeader: 'x-request-id',
    // Client IPs (rate limits, logs) come from X-Forwarded-For only when the peer is a trusted proxy.
    trustProxy: config.TRUSTED_PROXIES
      ? config.TRUSTED_PROXIES.split(',')
          .map((s) => s.trim())
          .filter(Boolean)
      : false,
  });
  // zod schemas; the hot routes' are compiled once more for Ajv and fast-json-stringify (compiled-schemas.ts).
  app.setValidatorCompiler(validatorCompiler);
  // Responses are documented by the zod schemas; they are written with JSON.stringify, or
  // fast-json-stringify for the compiled ones (predictions).
  app.setSerializerCompiler(serializerCompiler);
  // JSON only (the upload route also takes application/octet-stream, routes/models.ts): anything else is a 415.
  app.removeContentTypeParser('text/plain');

  const metrics = new ServiceMetrics();
  const store = new ModelStore(config.MODELS_DIR);
  await store.init();
  // `backup restore` refuses while this process serves from the store.
  const hold = await holdStore(config.MODELS_DIR);
  // The cores are shared among the HTTP workers (http-workers.ts), each with its own pool.
  const pool = new InferencePool({ size: config.INFERENCE_THREADS ?? Math.max(1, Math.round(usableCores() / config.HTTP_WORKERS)) });
  const registry = new ModelRegistry({
    store,
    pool,
    metrics,
    log: app.log,
    batching: { maxBatchSize: config.BATCH_MAX_SIZE, maxQueueDelayMs: config.BATCH_MAX_DELAY_MS },
  });
  const redis = config.REDIS_URL ? new RedisConnection(config.REDIS_URL, config.REDIS_TIMEOUT_MS) : undefined;
  const cache: CacheBackend = redis
    ? new RedisCache(redis, config.CACHE_LOCAL_TTL_SECONDS, config.CACHE_TTL_SECONDS)
    : new MemoryCache(config.CACHE_MAX_ENTRIES);
  const predictionLog: PredictionLog = redis
    ? new RedisPredictionLog(redis, config.PREDICTION_LOG_TTL_SECONDS, config.PREDICTION_LOG_MAX_ENTRIES, () =>
        metrics.cacheErrors.inc({ operation: 'prediction_log' }),
      )
    : new MemoryPredictionLog(config.PREDICTION_LOG_TTL_SECONDS, config.PREDICTION_LOG_MAX_ENTRIES);
  registry.onModelChanged = (name) =>
    cache.purgeModel(name).catch((err: Error) => {
      metrics.cacheErrors.inc({ operation: 'purge' });
      app.log.warn({ model: name, err: err.message }, 'cache purge failed; entries of the old version expire with their TTL');
    });
  const predictor = new Predictor({ cache, log: predictionLog, metrics, ttlSeconds: config.CACHE_TTL_SECONDS, shadowMaxInflight: config.SHADOW_MAX_INFLIGHT });
  const kubernetes = config.CONTROL_PLANE === 'kubernetes';
  registry.routingFromOperator = kubernetes;
  const k8s = kubernetes
    ? (await import('./kubernetes/kubernetes-mode.ts')).kubernetesMode(config.POD_NAMESPACE, options.kubeConfig, options.modelVersions)
    : undefined;
  const modelVersions = k8s?.modelVersions;
  const admission = new Admission(
    config.API_TOKEN,
    !kubernetes && config.HTTP_WORKERS > 1
      ? `${config.HTTP_WORKERS} HTTP workers each hold their own models, so a change in one would not reach the others: make model changes with HTTP_WORKERS=1 (the store keeps them) and restart with more, or let the operator manage models (CONTROL_PLANE=kubernetes)`
      : undefined,
  );
  const rollouts = new Rollouts({ registry, metrics, log: app.log });
  const rateLimiter = new RateLimiter({
    predictPerMinute: config.RATE_LIMIT_PREDICT_PER_MINUTE,
    uploadPerMinute: config.RATE_LIMIT_UPLOAD_PER_MINUTE,
    admission,
  });
  const ctx: ServiceContext = {
    config,
    store,
    pool,
    registry,
    cache,
    redis,
    predictor,
    metrics,
    serviceVersion,
    modelVersions,
    admission,
    rateLimiter,
    grpc: undefined,
    rollouts,
  };
  app.decorate('ctx', ctx);

  await app.register(rateLimit, { limiter: rateLimiter, metrics });
  await app.register(auth, { admission });
  // Before any route, so that every route (/metrics too) is in the document.
  if (config.DOCS) await app.register(docs, { version: serviceVersion });
  // With several HTTP workers, GET /metrics answers all of them added up (http-workers.ts).
  await app.register(httpMetrics, { metrics, read: shareMetrics(metrics.registry) });
  await app.register(problems, { metrics });
  await app.register(drainRefusedBodies);

  await app.register(healthRoutes, { ctx });
  await app.register(modelRoutes, { ctx });
  await app.register(predictRoutes, { ctx });
  await app.register(openInferenceRoutes, { ctx });
  if (config.GRPC_PORT !== 'off') ctx.grpc = new GrpcEndpoint(app, ctx, config.GRPC_PORT);

  await registry.start();
  const routing = k8s?.follow(registry, app.log);

  app.addHook('onClose', async () => {
    rollouts.close();
    await ctx.grpc?.close();
    await routing?.stop();
    await pool.close();
    await cache.close();
    await hold.release();
  });

  return app;
}
