import fastifyRateLimit from '@fastify/rate-limit';
import fastifySwagger from '@fastify/swagger';
import fastifySwaggerUi from '@fastify/swagger-ui';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyRequest } from 'fastify';
import { jsonSchemaTransform, validatorCompiler } from 'fastify-type-provider-zod';
import { timingSafeEqual } from 'node:crypto';
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import type { Redis } from 'ioredis';
import { usableCores } from './cgroup.ts';
import type { Config } from './config.ts';
import { errorOutcome, problemBody, ServiceError, type ErrorCode } from './errors.ts';
import { InferencePool } from './inference-pool.ts';
import { ServiceMetrics } from './metrics.ts';
import { followRouting, type ModelVersionApi } from './kubernetes-mode.ts';
import { ModelRegistry } from './model-registry.ts';
import { ModelStore } from './model-store.ts';
import { MemoryCache, type CacheBackend } from './prediction-cache.ts';
import { MemoryPredictionLog, RedisPredictionLog, type PredictionLog } from './prediction-log.ts';
import { RedisCache } from './redis-cache.ts';
import { createRedis } from './redis-client.ts';
import { Predictor } from './predictor.ts';
import { healthRoutes } from './routes/health.ts';
import { modelRoutes } from './routes/models.ts';
import { predictRoutes } from './routes/predict.ts';
import { v2Routes } from './routes/v2.ts';

// The one factory that builds the service; main.ts only reads config and listens, tests call
// buildApp() and app.inject().

const serviceVersion = (createRequire(import.meta.url)('../package.json') as { version: string }).version;

export interface ServiceContext {
  config: Config;
  store: ModelStore;
  pool: InferencePool;
  registry: ModelRegistry;
  cache: CacheBackend;
  /** The shared Redis connection, when REDIS_URL is set. */
  redis: Redis | undefined;
  predictor: Predictor;
  metrics: ServiceMetrics;
  serviceVersion: string;
  /** Kubernetes mode: ModelVersion calls for uploads and promotes. */
  modelVersions: ModelVersionApi | undefined;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Needs the API token (or, with none configured, a loopback client). */
    admin?: boolean;
    rateLimitClass?: 'predict' | 'upload';
  }
  interface FastifyInstance {
    ctx: ServiceContext;
  }
}

const LOOPBACK = new Set(['127.0.0.1', '::1', '::ffff:127.0.0.1']);

function isAuthorized(request: FastifyRequest, token: string | undefined): ErrorCode | undefined {
  const header = request.headers.authorization;
  if (token) {
    if (!header?.startsWith('Bearer ')) return 'UNAUTHORIZED';
    const given = Buffer.from(header.slice(7).trim());
    const want = Buffer.from(token);
    return given.length === want.length && timingSafeEqual(given, want) ? undefined : 'UNAUTHORIZED';
  }
  return LOOPBACK.has(request.socket.remoteAddress ?? '') ? undefined : 'FORBIDDEN';
}


export interface BuildOptions {
  config: Config;
  logger?: boolean | object;
  /** Kubernetes mode's ModelVersion client (default: the API server of the in-cluster or current kubeconfig). */
  modelVersions?: ModelVersionApi;
}

/** Rate-limit key: the bearer token (hashed, never kept in clear) when present, else the client IP. */
function rateLimitKey(request: FastifyRequest): string {
  const auth = request.headers.authorization;
  const who = auth?.startsWith('Bearer ') ? `token:${createHash('sha256').update(auth.slice(7)).digest('base64url').slice(0, 22)}` : `ip:${request.ip}`;
  return `${request.routeOptions.config.rateLimitClass}:${who}`;
}

export async function buildApp(options: BuildOptions): Promise<FastifyInstance> {
  const { config } = options;
  const app = Fastify({
    logger: options.logger ?? {
      level: config.LOG_LEVEL,
      redact: { paths: ['req.headers.authorization', 'body.model_data'], censor: '[redacted]' },
    },
    bodyLimit: config.BODY_LIMIT_BYTES,
    requestIdHeader: 'x-request-id',
    // Client IPs (rate limits, logs) come from X-Forwarded-For only when the peer is a trusted proxy.
    trustProxy: config.TRUSTED_PROXIES ? config.TRUSTED_PROXIES.split(',').map((s) => s.trim()).filter(Boolean) : false,
  });
  app.setValidatorCompiler(validatorCompiler);
  // Responses are documented by the zod schemas; they are written with plain JSON.stringify.
  app.setSerializerCompiler(() => (data) => JSON.stringify(data));
  app.removeContentTypeParser('text/plain');
  app.addContentTypeParser('application/octet-stream', { parseAs: 'buffer', bodyLimit: config.BODY_LIMIT_BYTES }, (_req, body, done) => done(null, body));

  const metrics = new ServiceMetrics();
  const store = new ModelStore(config.MODELS_DIR);
  await store.init();
  const pool = new InferencePool({ size: config.INFERENCE_THREADS ?? usableCores() });
  const registry = new ModelRegistry({ store, pool, metrics, log: app.log, batching: { maxBatchSize: config.BATCH_MAX_SIZE, maxQueueDelayMs: config.BATCH_MAX_DELAY_MS } });
  const redis = config.REDIS_URL ? createRedis(config.REDIS_URL, config.REDIS_TIMEOUT_MS) : undefined;
  const cache: CacheBackend = redis ? new RedisCache(redis) : new MemoryCache(config.CACHE_MAX_ENTRIES);
  const predictionLog: PredictionLog = redis
    ? new RedisPredictionLog(redis, config.PREDICTION_LOG_TTL_SECONDS, () => metrics.cacheErrors.inc({ operation: 'prediction_log' }))
    : new MemoryPredictionLog(config.PREDICTION_LOG_TTL_SECONDS, config.PREDICTION_LOG_MAX_ENTRIES);
  registry.onModelChanged = (name) =>
    cache.purgeModel(name).catch((err: Error) => {
      metrics.cacheErrors.inc({ operation: 'purge' });
      app.log.warn({ model: name, err: err.message }, 'cache purge failed; entries of the old version expire with their TTL');
    });
  const predictor = new Predictor({ registry, cache, log: predictionLog, metrics, ttlSeconds: config.CACHE_TTL_SECONDS });
  const kubernetes = config.CONTROL_PLANE === 'kubernetes';
  registry.routingFromOperator = kubernetes;
  const modelVersions = kubernetes ? (options.modelVersions ?? (await import('./kubernetes-model-versions.ts')).kubernetesModelVersions(config.POD_NAMESPACE)) : undefined;
  const ctx: ServiceContext = { config, store, pool, registry, cache, redis, predictor, metrics, serviceVersion, modelVersions };
  app.decorate('ctx', ctx);

  // Per-route limits per client; shared by every replica through Redis when configured. A Redis
  // failure lets requests through (skipOnError) rather than blocking them.
  await app.register(fastifyRateLimit, {
    global: true,
    allowList: (request) => request.routeOptions.config.rateLimitClass === undefined,
    max: (request) => (request.routeOptions.config.rateLimitClass === 'upload' ? config.RATE_LIMIT_UPLOAD_PER_MINUTE : config.RATE_LIMIT_PREDICT_PER_MINUTE),
    timeWindow: 60_000,
    keyGenerator: rateLimitKey,
    ...(redis ? { redis, nameSpace: 'ratelimit:' } : {}),
    skipOnError: true,
    onExceeded: (request) => metrics.rateLimited.inc({ route: request.routeOptions.url ?? 'unmatched' }),
    // The x-ratelimit-* headers go on 429s (with retry-after), not on every answer: they cost on the hot path.
    addHeadersOnExceeding: { 'x-ratelimit-limit': false, 'x-ratelimit-remaining': false, 'x-ratelimit-reset': false },
  });

  app.addHook('onRequest', (request, _reply, done) => {
    if (!request.routeOptions.config.admin) return done();
    const denied = isAuthorized(request, config.API_TOKEN);
    if (denied === 'UNAUTHORIZED') return done(new ServiceError('UNAUTHORIZED', 'send Authorization: Bearer <API_TOKEN>'));
    if (denied === 'FORBIDDEN') return done(new ServiceError('FORBIDDEN', 'no API_TOKEN is configured, so model changes are accepted from loopback clients only'));
    done();
  });

  app.addHook('onResponse', (request, reply, done) => {
    metrics.observeHttp(request.method, request.routeOptions.url ?? 'unmatched', reply.statusCode, reply.elapsedTime / 1000);
    done();
  });

  app.setErrorHandler((err: FastifyError, request, reply) => {
    const { code, detail, details } = errorOutcome(err);
    const body = problemBody(code, detail, request.url.split('?')[0]!, details);
    if (body.status >= 500) request.log.error({ err }, 'request failed');
    metrics.errors.inc({ code });
    reply.code(body.status).type('application/problem+json');
    if (code === 'RATE_LIMITED') for (const [k, v] of Object.entries((err as { headers?: Record<string, string> }).headers ?? {})) reply.header(k, v);
    return reply.send(body);
  });

  app.setNotFoundHandler((request, reply) => {
    metrics.errors.inc({ code: 'NOT_FOUND' });
    reply
      .code(404)
      .type('application/problem+json')
      .send(problemBody('NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0]}; see /docs for the API`, request.url.split('?')[0]!));
  });

  if (config.DOCS) {
    await app.register(fastifySwagger, {
      openapi: {
        info: { title: 'analytics-api', description: 'ONNX model serving: model registry, predictions, metrics', version: serviceVersion },
        components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      },
      transform: jsonSchemaTransform,
    });
    await app.register(fastifySwaggerUi, { routePrefix: '/docs' });
  }

  await app.register(healthRoutes, { ctx });
  await app.register(modelRoutes, { ctx });
  await app.register(predictRoutes, { ctx });
  await app.register(v2Routes, { ctx });

  app.get('/metrics', { schema: { tags: ['health'], summary: 'Prometheus metrics' } }, async (_req, reply) => {
    reply.type(metrics.registry.contentType);
    return metrics.registry.metrics();
  });

  await registry.start();
  const routing = kubernetes ? await followRouting(config.ROUTING_FILE, registry, app.log) : undefined;

  app.addHook('onClose', async () => {
    routing?.stop();
    await pool.close();
    await cache.close();
  });

  return app;
}
