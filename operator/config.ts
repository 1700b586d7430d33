import { hostname } from 'node:os';
import { z } from 'zod';
import { parseEnvironment } from '../contract/environment.ts';
import { LOG_FORMAT_DESCRIPTION, LOG_FORMATS } from '../contract/logging.ts';
import { BACKUPS_PVC, MODELS_PVC, NAMESPACE, SERVICE_NAME } from '../contract/names.ts';

// The operator's configuration, read from the environment once at start (KUBECONFIG is read by
// client-node's loadFromDefault: in-cluster service account, else $KUBECONFIG, else ~/.kube/config).
// A bad value stops the process with a message naming the variable.

const seconds = (def: number) => z.coerce.number().positive().max(86_400).default(def);
const dnsName = z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'must be a lowercase DNS name');

export const operatorConfigSchema = z
  .object({
    NAMESPACE: dnsName.default(NAMESPACE).describe('The namespace the operator watches and works in'),
    SERVICE_NAME: dnsName.default(SERVICE_NAME).describe('The Service of the inference pods: its ready endpoints tell which version each pod serves'),
    IMPORT_IMAGE: z.string().min(1).default(`${SERVICE_NAME}:latest`).describe('Image of the import and backup Jobs (the service image, with its CLI)'),
    IMPORT_IMAGE_PULL_POLICY: z.enum(['Always', 'IfNotPresent', 'Never']).default('IfNotPresent'),
    MODELS_PVC: dnsName.default(MODELS_PVC).describe('PersistentVolumeClaim of the model store'),
    BACKUPS_PVC: dnsName.default(BACKUPS_PVC).describe('PersistentVolumeClaim backups are written to'),
    IMPORT_BACKOFF_LIMIT: z.coerce.number().int().min(0).max(20).default(2).describe('Retries of a failed import Job'),
    IMPORT_DEADLINE_SECONDS: z.coerce.number().int().min(10).max(86_400).default(900).describe('An import Job running longer fails'),
    IMPORT_TTL_SECONDS: z.coerce
      .number()
      .int()
      .min(0)
      .max(86_400 * 7)
      .default(600)
      .describe('Finished import Jobs are deleted this long after (their result stays in the status)'),
    METRICS_HOST: z.string().default('0.0.0.0').describe('Address of the /metrics, /healthz, /readyz server'),
    METRICS_PORT: z.coerce.number().int().min(0).max(65_535).default(8081),
    LEADER_ELECT: z.stringbool().default(true).describe('Run only while holding the Lease (several replicas: one works)'),
    LEASE_DURATION_SECONDS: seconds(15).describe('How long a Lease holds without renewal before another replica takes over'),
    RENEW_DEADLINE_SECONDS: seconds(10).describe('The leader gives up (and exits) when it cannot renew for this long'),
    RETRY_PERIOD_SECONDS: seconds(2).describe('How often replicas try to acquire or renew the Lease'),
    IDENTITY: z.string().min(1).optional().describe('This replica in the Lease (default POD_NAME, else hostname_pid)'),
    POD_NAME: z.string().optional(),
    WORKERS: z.coerce.number().int().min(1).max(64).default(4).describe('Concurrent reconciles of ModelVersions'),
    RESYNC_SECONDS: seconds(600).describe('Every object is reconciled again this often, even without events'),
    BACKOFF_BASE_MS: z.coerce.number().positive().max(60_000).default(5).describe('First retry delay of a failed reconcile; doubles per failure'),
    BACKOFF_MAX_SECONDS: seconds(300).describe('Longest retry delay of a failing object'),
    RETRY_QPS: z.coerce.number().positive().default(10).describe('Overall rate of retries (token bucket)'),
    RETRY_BURST: z.coerce.number().int().positive().default(100),
    LOG_LEVEL: z.enum(['error', 'warn', 'info', 'debug']).default('info'),
    LOG_FORMAT: z.enum(LOG_FORMATS).optional().describe(LOG_FORMAT_DESCRIPTION),
  })
  .refine((c) => c.RENEW_DEADLINE_SECONDS < c.LEASE_DURATION_SECONDS, {
    message: 'RENEW_DEADLINE_SECONDS must be shorter than LEASE_DURATION_SECONDS',
    path: ['RENEW_DEADLINE_SECONDS'],
  })
  .refine((c) => c.RETRY_PERIOD_SECONDS < c.RENEW_DEADLINE_SECONDS, {
    message: 'RETRY_PERIOD_SECONDS must be shorter than RENEW_DEADLINE_SECONDS',
    path: ['RETRY_PERIOD_SECONDS'],
  });

export type OperatorConfig = z.output<typeof operatorConfigSchema> & { identity: string };

export function loadOperatorConfig(env: NodeJS.ProcessEnv = process.env): OperatorConfig {
  // Empty variables count as unset, as in a Deployment's env with value "".
  const present = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const c = parseEnvironment(operatorConfigSchema, present, 'operator configuration');
  return { ...c, identity: c.IDENTITY ?? c.POD_NAME ?? `${hostname()}_${process.pid}` };
}
