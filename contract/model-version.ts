import { z } from 'zod';
import { figures } from './figures.ts';
import { MODEL_NAME, MODEL_NAME_RULE, VERSION_NAME, VERSION_NAME_RULE } from './model-names.ts';
import { RolloutSpec, RolloutStatus } from './rollout.ts';

// The ModelVersion API (serving.analytics.dev/v1alpha1), once: the operator validates with these
// zod schemas, the CRD's structural OpenAPI schema is generated from them (crd.ts), and their
// TypeScript types are the operator's.

export const GROUP = 'serving.analytics.dev';
export const VERSION = 'v1alpha1';
export const KIND = 'ModelVersion';
export const PLURAL = 'modelversions';
export const SINGULAR = 'modelversion';
export const SHORT_NAMES = ['mv'];
export const CATEGORIES = ['analytics', 'serving'];
export const API_VERSION = `${GROUP}/${VERSION}`;

const STAGES = ['Production', 'Staging', 'Archived'] as const;
export const PHASES = ['Pending', 'Importing', 'Imported', 'Progressing', 'Serving', 'Standby', 'RolledBack', 'Archived', 'Failed'] as const;
const CONDITION_TYPES = ['Imported', 'Serving', 'Ready'] as const;

export type Stage = (typeof STAGES)[number];
export type Phase = (typeof PHASES)[number];
export type ConditionType = (typeof CONDITION_TYPES)[number];

/**
 * A string matching `re`, refused with `message`. The message also goes into the CRD (crd.ts turns
 * it into a CEL rule), so the API server refuses with the same words the operator would use.
 */
function matching(re: RegExp, message: string) {
  return z.string().regex(re, message).meta({ 'x-validation-message': message });
}

/** A five-field cron expression or one of the macros Kubernetes CronJobs accept. */
const CRON = /^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|\S+( +\S+){4})$/;

/** A relative path with no empty, "." or ".." segment: it cannot leave the model store. */
const SEGMENT = String.raw`([^/.][^/]*|\.[^/.][^/]*|\.\.[^/]+)`;
const STORE_PATH = new RegExp(`^${SEGMENT}(/${SEGMENT})*$`);

const sha256 = matching(/^[a-f0-9]{64}$/, 'sha256 must be 64 lowercase hexadecimal characters')
  .max(64)
  .describe('Expected sha256 of the ONNX file, 64 lowercase hex characters; the import fails on a mismatch');

const ModelVersionSource = z
  .object({
    storePath: matching(STORE_PATH, 'storePath is a relative path inside the model store, without "." or ".." segments, e.g. production/iris/1/model.onnx')
      .min(1)
      .max(1024)
      .optional()
      .describe("A path inside the model store (the service's MODELS_DIR), e.g. production/iris/1/model.onnx; verified in place"),
    url: matching(/^https?:\/\/[^\s/]+/, 'url must be an http:// or https:// URL')
      .max(2048)
      .optional()
      .describe('An http(s) URL the import Job downloads the ONNX file from'),
    configMapRef: z
      .object({
        name: z.string().min(1).max(253).describe("ConfigMap name, in the ModelVersion's namespace"),
        key: z.string().min(1).max(253).describe('Key of the binaryData (or data) entry holding the ONNX file'),
      })
      .strict()
      .optional()
      .describe('A ConfigMap entry holding the ONNX file (binaryData; up to about 1 MiB)'),
  })
  .strict()
  .refine((s) => sourceKinds(s).length === 1, 'source must name exactly one of storePath, url or configMapRef')
  .describe('Where the ONNX file comes from: exactly one of storePath, url, configMapRef');

const BackupSpec = z
  .object({
    schedule: matching(CRON, 'schedule must be a cron expression of five fields (e.g. "0 2 * * *") or a macro such as @daily')
      .max(100)
      .default(figures.backup.schedule)
      .describe("Cron schedule of the model's backup CronJob (default daily at 02:00)"),
    retentionDays: z.number().int().min(1).max(3650).default(figures.backup.retentionDays).describe('Days of backups to keep (default 7)'),
    suspend: z.boolean().default(false).describe('Pause the backups'),
  })
  .strict()
  .describe("Automated backups of the model store, one CronJob per model, settings from the model's highest version (the specification: daily, 7 days)");

export const ModelVersionSpec = z
  .object({
    model: matching(MODEL_NAME, MODEL_NAME_RULE).max(63).describe('Model name; versions of one model share it. Immutable'),
    version: matching(VERSION_NAME, VERSION_NAME_RULE)
      .max(63)
      .describe('Semantic version of the model ("2", "1.4", "1.0.0-rc.1"; "2" reads as 2.0.0): of the Production versions the highest serves. Immutable'),
    source: ModelVersionSource,
    sha256: sha256.optional(),
    features: z.array(z.string().min(1).max(256)).max(10_000).optional().describe("Ordered input feature names (the columns of the model's input). Immutable"),
    metadata: z.record(z.string(), z.unknown()).optional().describe('Free-form metadata stored with the version at import'),
    stage: z
      .enum(STAGES)
      .default('Staging')
      .describe('Production versions serve: of the imported ones the highest version; the others stand by. Staging and Archived ones do not serve'),
    backup: BackupSpec.prefault({}),
    rollout: RolloutSpec.optional(),
  })
  .strict();

/** Fields the import depends on: changing them would need another version, so the CRD refuses it. */
export const IMMUTABLE_FIELDS = ['model', 'version', 'source', 'sha256', 'features'] as const;

export const Condition = z.object({
  type: z.string().describe('Imported, Serving or Ready (Ready: serving; kubectl wait --for=condition=Ready waits for it)'),
  status: z.enum(['True', 'False', 'Unknown']),
  observedGeneration: z.number().int().optional().describe('The metadata.generation this condition was set from'),
  lastTransitionTime: z.string().describe('When the status last changed'),
  reason: z.string().describe('A CamelCase reason'),
  message: z.string().describe('What happened, for a person'),
});

export const Artifact = z.object({
  path: z.string().describe('Path of the ONNX file inside the model store'),
  sha256: z.string().optional().describe('sha256 of the stored ONNX file'),
  sizeBytes: z.number().int().optional().describe('Size of the stored ONNX file'),
});

export const ModelVersionStatus = z.object({
  observedGeneration: z.number().int().optional().describe('The metadata.generation the operator last acted on'),
  phase: z
    .enum(PHASES)
    .optional()
    .describe(
      'Pending, Importing, Imported, Progressing (on its way to serve, or rolling out), Serving, Standby, RolledBack (its rollout failed a check), Archived or Failed',
    ),
  conditions: z.array(Condition).optional().describe('Imported, Serving and Ready (metav1.Condition)'),
  artifact: Artifact.optional().describe('The ONNX file in the model store, once imported'),
  features: z.array(z.string()).optional().describe("Input feature names the import resolved (spec.features, or the model's own)"),
  signature: z.record(z.string(), z.unknown()).optional().describe('Input/output signature onnxruntime reported at import'),
  importJob: z.string().optional().describe('Name of the import Job'),
  servingSince: z.string().optional().describe('When this version started serving'),
  url: z.string().optional().describe('Where to send predictions for this version, while it serves (the service inside the cluster)'),
  message: z.string().optional().describe('What the operator is doing or waiting for'),
  weight: z
    .number()
    .int()
    .min(0)
    .max(100)
    .optional()
    .describe("Percent of the model's traffic this version answers (100 when it alone serves, its step's share during a canary)"),
  rollout: RolloutStatus.optional().describe('The canary or shadow rollout of this version against the stable one (spec.rollout)'),
});

export type ModelVersionSpec = z.output<typeof ModelVersionSpec>;
export type ModelVersionSpecInput = z.input<typeof ModelVersionSpec>;
export type ModelVersionStatus = z.output<typeof ModelVersionStatus>;
export type Condition = z.output<typeof Condition>;
export type Artifact = z.output<typeof Artifact>;

interface ObjectMeta {
  name: string;
  namespace?: string;
  uid?: string;
  generation?: number;
  resourceVersion?: string;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  finalizers?: string[];
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export interface ModelVersion {
  apiVersion: typeof API_VERSION;
  kind: typeof KIND;
  metadata: ObjectMeta;
  spec: ModelVersionSpec;
  status?: ModelVersionStatus;
}

/** Exactly one source: the same rule the CRD carries as CEL. */
function sourceKinds(source: { storePath?: unknown; url?: unknown; configMapRef?: unknown }): Array<'storePath' | 'url' | 'configMapRef'> {
  return (['storePath', 'url', 'configMapRef'] as const).filter((k) => source[k] !== undefined);
}
