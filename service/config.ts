import { z } from 'zod';
import { parseEnvironment } from '../contract/environment.ts';
import { figures } from '../contract/figures.ts';
import { LOG_FORMAT_DESCRIPTION, LOG_FORMATS } from '../contract/logging.ts';
import { parseSchedule } from './backup/schedule.ts';

// The service's whole configuration, read from the environment once at start. A bad value stops
// the process with a message naming the variable, before anything listens.
export const configSchema = z.object({
  PORT: z.coerce.number().int().min(0).max(65535).default(8080).describe('TCP port to listen on'),
  HOST: z.string().min(1).default('127.0.0.1').describe('Address to listen on (0.0.0.0 in a container)'),
  GRPC_PORT: z
    .union([z.literal('off'), z.coerce.number().int().min(0).max(65535)])
    .default(8081)
    .describe('TCP port of the Open Inference Protocol over gRPC, on HOST (8081 as in KServe; 0: any free port; off: no gRPC)'),
  MODELS_DIR: z.string().min(1).default('./data/models').describe('Root of the model store'),
  SAMPLE_MODELS_DIR: z.string().optional().describe('A folder of sample <name>.onnx + <name>.json files imported at start when the store lacks them'),
  REDIS_URL: z.string().url().optional().describe('Redis for the prediction cache; unset: in-memory cache'),
  CACHE_TTL_SECONDS: z.coerce.number().int().min(1).max(86400).default(figures.cacheTtlSeconds),
  CACHE_MAX_ENTRIES: z.coerce.number().int().min(1).default(100_000).describe('In-memory cache bound'),
  CACHE_LOCAL_TTL_SECONDS: z.coerce
    .number()
    .int()
    .min(0)
    .max(60)
    .default(5)
    .describe('With Redis: how long this process keeps the answers it read or wrote in its own tier in front of Redis (0: no tier)'),
  REDIS_TIMEOUT_MS: z.coerce.number().int().min(1).max(10_000).default(50).describe('Per-command Redis timeout; past it the cache is skipped'),
  RATE_LIMIT_PREDICT_PER_MINUTE: z.coerce
    .number()
    .int()
    .min(1)
    .default(600_000)
    .describe('Per client (the API token, else its address) and replica: predictions, infer and feedback; 10,000 a second by default'),
  RATE_LIMIT_UPLOAD_PER_MINUTE: z.coerce.number().int().min(1).default(30).describe('Per client, model uploads'),
  TRUSTED_PROXIES: z.string().optional().describe('Comma-separated addresses/CIDRs of proxies (the ingress) whose X-Forwarded-For is believed'),
  CANARY_KEY_HEADER: z
    .string()
    .regex(/^[a-z0-9-]+$/, 'CANARY_KEY_HEADER is a lowercase header name such as x-canary-key')
    .default('x-canary-key')
    .describe('During a canary, requests carrying this header stay on one side: the same value, the same version (others are split at random)'),
  SHADOW_MAX_INFLIGHT: z.coerce
    .number()
    .int()
    .min(0)
    .default(64)
    .describe('During a shadow rollout, copies running at once at most; past it a copy is skipped (counted), so a slow shadow never slows the answers'),
  PREDICTION_LOG_TTL_SECONDS: z.coerce.number().int().min(1).default(3600).describe('How long a prediction_id accepts feedback'),
  PREDICTION_LOG_MAX_ENTRIES: z.coerce.number().int().min(1).default(200_000).describe('In-memory bound on remembered predictions'),
  API_TOKEN: z.string().min(16, 'API_TOKEN must be at least 16 characters').optional(),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  LOG_FORMAT: z.enum(LOG_FORMATS).optional().describe(LOG_FORMAT_DESCRIPTION),
  BODY_LIMIT_BYTES: z.coerce.number().int().min(1024).default(figures.bodyLimitBytes),
  REQUEST_TIMEOUT_MS: z.coerce
    .number()
    .int()
    .min(1000)
    .default(120_000)
    .describe('A request must arrive whole (headers and body) within this long, or its socket is closed'),
  HEADERS_TIMEOUT_MS: z.coerce.number().int().min(100).default(10_000).describe("A request's headers must arrive within this long"),
  SHUTDOWN_DRAIN_SECONDS: z.coerce
    .number()
    .min(0)
    .max(300)
    .default(5)
    .describe(
      'On SIGTERM, open connections are served this long at most, each answer saying Connection: close, before the server closes (in a pod after its preStop sleep)',
    ),
  HTTP_WORKERS: z.coerce
    .number()
    .int()
    .min(1)
    .max(64)
    .default(1)
    .describe(
      'Processes answering HTTP and gRPC on the same ports (more than one event loop; needs REDIS_URL, and model changes then go through Kubernetes or a restart)',
    ),
  INFERENCE_THREADS: z.coerce
    .number()
    .int()
    .min(1)
    .max(64)
    .optional()
    .describe('Inference threads per HTTP worker; default: the cgroup CPU limit divided among the HTTP workers'),
  BATCH_MAX_SIZE: z.coerce
    .number()
    .int()
    .min(1)
    .max(100_000)
    .default(64)
    .describe('Dynamic batching: rows per ONNX run at most (1 turns batching off); per model: metadata.batching.max_batch_size'),
  BATCH_MAX_DELAY_MS: z.coerce
    .number()
    .min(0)
    .max(1000)
    .default(0)
    .describe('Dynamic batching: how long a request may wait for others (0: requests arriving together); per model: metadata.batching.max_queue_delay_ms'),
  BACKUP_DIR: z.string().min(1).optional().describe('Folder for backup archives; when set, the standalone service runs scheduled backups into it'),
  BACKUP_SCHEDULE: z
    .string()
    .superRefine((value, ctx) => {
      try {
        parseSchedule(value);
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: (err as Error).message });
      }
    })
    .default(figures.backup.schedule)
    .describe('When scheduled backups run: a five-field cron expression, UTC'),
  BACKUP_RETENTION_DAYS: z.coerce
    .number()
    .int()
    .min(0)
    .default(figures.backup.retentionDays)
    .describe('Backups of the last N days are kept (the newest always)'),
  REDIS_DATA_DIR: z.string().optional().describe('Redis data folder included in backups; "" for none; unset: /data/redis when it exists'),
  CONTROL_PLANE: z
    .enum(['standalone', 'kubernetes'])
    .default('standalone')
    .describe("kubernetes: ModelVersion resources and the operator's routing decide what serves"),
  POD_NAMESPACE: z.string().default('analytics').describe('Kubernetes mode: the namespace of the routing ConfigMap and the ModelVersions'),
  DOCS: z.stringbool().default(true).describe('Serve the OpenAPI document and /docs'),
});

export type Config = z.infer<typeof configSchema>;

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  return parseEnvironment(configSchema.superRefine(sharedStateNeedsRedis), env, 'configuration');
}

// Each HTTP worker is its own process: the cache and the predictions that feedback quotes must
// live in Redis for all of them to see the same ones.
function sharedStateNeedsRedis(config: Config, ctx: z.RefinementCtx): void {
  if (config.HTTP_WORKERS > 1 && !config.REDIS_URL)
    ctx.addIssue({
      code: 'custom',
      path: ['HTTP_WORKERS'],
      message: `${config.HTTP_WORKERS} HTTP workers share their cache and predictions through Redis: set REDIS_URL, or HTTP_WORKERS=1`,
    });
}
