import { z } from 'zod';
import { figures } from '../../service/figures.ts';
import { MODEL_NAME, VERSION_NAME } from '../../service/model-store.ts';

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

export const STAGES = ['Production', 'Staging', 'Archived'] as const;
export const PHASES = ['Pending', 'Importing', 'Imported', 'Progressing', 'Serving', 'Standby', 'Archived', 'Failed'] as const;

const sha256 = z
  .string()
  .regex(/^[a-f0-9]{64}$/, 'sha256 must be 64 lowercase hexadecimal characters')
  .describe('Expected sha256 of the ONNX file, 64 lowercase hex characters; the import fails on a mismatch');

export const ModelVersionSource = z
  .object({
    storePath: z
      .string()
      .min(1)
      .max(1024)
      .regex(/^[^/].*$/, 'storePath is relative to the model store')
      .optional()
      .describe('A path inside the model store (the service\'s MODELS_DIR), e.g. production/iris/1/model.onnx; verified in place'),
    url: z
      .string()
      .url()
      .max(2048)
      .regex(/^https?:\/\//, 'url must be http or https')
      .optional()
      .describe('An http(s) URL the import Job downloads the ONNX file from'),
    configMapRef: z
      .object({
        name: z.string().min(1).max(253).describe('ConfigMap name, in the ModelVersion\'s namespace'),
        key: z.string().min(1).max(253).describe('Key of the binaryData (or data) entry holding the ONNX file'),
      })
      .strict()
      .optional()
      .describe('A ConfigMap entry holding the ONNX file (binaryData; up to about 1 MiB)'),
  })
  .strict()
  .describe('Where the ONNX file comes from: exactly one of storePath, url, configMapRef');

export const BackupSpec = z
  .object({
    schedule: z.string().min(9).max(100).default(figures.backup.schedule).describe('Cron schedule of the model\'s backup CronJob (default daily)'),
    retentionDays: z.number().int().min(1).max(3650).default(figures.backup.retentionDays).describe('Days of backups to keep'),
    suspend: z.boolean().default(false).describe('Pause the backups'),
  })
  .strict()
  .describe('Automated backups of the model store (the specification: daily, 7 days)');

export const ModelVersionSpec = z
  .object({
    model: z.string().regex(MODEL_NAME, 'model is 1-63 lowercase letters, digits and "-"').describe('Model name; versions of one model share it'),
    version: z.string().regex(VERSION_NAME, 'version is 1-63 lowercase letters, digits, "." and "-"').describe('Version of the model, immutable'),
    source: ModelVersionSource,
    sha256: sha256.optional(),
    features: z.array(z.string().min(1).max(256)).max(10_000).optional().describe('Ordered input feature names (the columns of the model\'s input)'),
    metadata: z.record(z.string(), z.unknown()).optional().describe('Free-form metadata kept with the version'),
    stage: z.enum(STAGES).default('Staging').describe('Production versions serve (the newest imported one wins); Staging and Archived do not'),
    backup: BackupSpec.prefault({}),
  })
  .strict();

export const Condition = z.object({
  type: z.string(),
  status: z.enum(['True', 'False', 'Unknown']),
  observedGeneration: z.number().int().optional(),
  lastTransitionTime: z.string(),
  reason: z.string(),
  message: z.string(),
});

export const ModelVersionStatus = z.object({
  observedGeneration: z.number().int().optional(),
  phase: z.enum(PHASES).optional(),
  conditions: z.array(Condition).optional(),
  artifact: z.object({ path: z.string(), sha256: z.string(), sizeBytes: z.number().int() }).optional(),
  signature: z.record(z.string(), z.unknown()).optional(),
  servingSince: z.string().optional(),
  message: z.string().optional(),
});

export type ModelVersionSpec = z.output<typeof ModelVersionSpec>;
export type ModelVersionStatus = z.output<typeof ModelVersionStatus>;
export type Condition = z.output<typeof Condition>;

export interface ModelVersion {
  apiVersion: typeof API_VERSION;
  kind: typeof KIND;
  metadata: {
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
  };
  spec: ModelVersionSpec;
  status?: ModelVersionStatus;
}

/** Exactly one source: the same rule the CRD carries as CEL. */
export function sourceKinds(source: z.input<typeof ModelVersionSource>): string[] {
  return (['storePath', 'url', 'configMapRef'] as const).filter((k) => source[k] !== undefined);
}
