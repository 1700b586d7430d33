import type { z } from 'zod';
import { compiledCheck } from './compiled-schemas.ts';

// Every error the service answers with has a stable code and a status; http/problems.ts turns any
// error into one (problem+json, or {"error"} for the Open Inference Protocol).
export const errorCatalog = {
  VALIDATION_FAILED: { status: 400, title: 'The request is not valid' },
  INVALID_MODEL: { status: 400, title: 'The uploaded bytes are not a model this service can serve' },
  FEATURES_INVALID: { status: 400, title: 'The features do not fit the model' },
  MODEL_ID_MISMATCH: { status: 400, title: 'model_id in the body differs from the path' },
  UNAUTHORIZED: { status: 401, title: 'A valid bearer token is required' },
  FORBIDDEN: { status: 403, title: 'Not allowed from this client' },
  MODEL_NOT_FOUND: { status: 404, title: 'No such model' },
  VERSION_NOT_FOUND: { status: 404, title: 'No such model version' },
  PREDICTION_NOT_FOUND: { status: 404, title: 'No such prediction' },
  NOT_FOUND: { status: 404, title: 'No such resource' },
  ROLLOUT_NOT_FOUND: { status: 404, title: 'No rollout is running for this model' },
  METHOD_NOT_ALLOWED: { status: 405, title: 'Method not allowed' },
  VERSION_EXISTS: { status: 409, title: 'This model version exists already; versions are immutable' },
  VERSION_IN_PRODUCTION: { status: 409, title: 'The production version cannot be deleted' },
  MANAGED_BY_KUBERNETES: { status: 409, title: 'ModelVersion resources manage this; use kubectl' },
  ROLLOUT_IN_PROGRESS: { status: 409, title: 'The model is rolling out another version' },
  MODELS_FIXED: { status: 409, title: 'Models cannot change while several HTTP workers serve them' },
  BODY_TOO_LARGE: { status: 413, title: 'The request body is too large' },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, title: 'Unsupported content type' },
  RATE_LIMITED: { status: 429, title: 'Too many requests' },
  MODEL_NOT_LOADED: { status: 503, title: 'The model is not loaded yet' },
  KUBERNETES_UNAVAILABLE: { status: 503, title: 'The Kubernetes API could not be reached' },
  REDIS_UNAVAILABLE: { status: 503, title: 'Redis could not be reached' },
  METRICS_UNAVAILABLE: { status: 503, title: "The other HTTP workers' metrics could not be collected" },
  INFERENCE_FAILED: { status: 500, title: 'The model failed to run' },
  STORE_CORRUPT: { status: 500, title: 'The model store holds a damaged artifact' },
  INTERNAL: { status: 500, title: 'Internal error' },
} as const;

export type ErrorCode = keyof typeof errorCatalog;

export interface ProblemDetail {
  /** A field or feature name the problem is about. */
  field?: string;
  message: string;
}

export class ServiceError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly details: ProblemDetail[] | undefined;

  constructor(code: ErrorCode, message: string, details?: ProblemDetail[]) {
    super(message);
    this.name = 'ServiceError';
    this.code = code;
    this.status = errorCatalog[code].status;
    this.details = details;
  }
}

/** At most `max` items named, then how many more: an error never grows with the input. */
export function listSome(items: readonly string[], max = 10): string {
  if (items.length <= max) return items.join(', ');
  return `${items.slice(0, max).join(', ')} and ${(items.length - max).toLocaleString('en-US')} more`;
}

/** Parses with a zod schema or throws a 400 naming every field at fault (`where`: body, query, ...). */
export function parseRequest<T extends z.ZodType>(schema: T, value: unknown, where: string): z.output<T> {
  // A compiled() schema's fast check: what it accepts, zod would give back as it is.
  if (compiledCheck(schema)?.(value)) return value as z.output<T>;
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const errors = parsed.error.issues.map((i) => ({
    field: i.path.join('.') || where,
    message: `${where}${i.path.length ? `.${i.path.join('.')}` : ''}: ${i.message}`,
  }));
  throw new ServiceError('VALIDATION_FAILED', errors.map((e) => e.message).join('; '), errors);
}
