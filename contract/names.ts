import { shortHash } from './hashing.ts';

// Names users rely on (DESIGN.md), stated once for the service, the operator, the manifests and the tests.
export const NAMESPACE = 'analytics';
export const SERVICE_NAME = 'analytics-api';
export const IMAGE = 'analytics-api';
export const OPERATOR_NAME = 'analytics-operator';
export const ROUTING_CONFIGMAP = 'analytics-api-routing';
/** The routing ConfigMap's one key (contract/routing.ts). */
export const ROUTING_KEY = 'routing.json';
export const MODELS_MOUNT_DIR = '/app/models';
export const BACKUPS_MOUNT_DIR = '/backups';
export const REDIS_DATA_DIR = '/data/redis';
/** PersistentVolumeClaims: the model store (shared by the service and the import Jobs) and the backups. */
export const MODELS_PVC = 'analytics-models';
export const BACKUPS_PVC = 'analytics-backups';
/** The service image's command line (package.json "bin"). */
export const CLI = 'analytics-api';
export const backupCronJobName = (model: string) => `analytics-backup-${model}`;
export const FIELD_MANAGER = 'analytics-operator';
export const FINALIZER = 'serving.analytics.dev/finalizer';
/** On the routing ConfigMap: a hash of its routing.json (equal text, equal hash). */
export const ROUTING_HASH_ANNOTATION = 'serving.analytics.dev/routing-hash';
/** Hash of what the operator last applied to an object it owns: equal means nothing to apply. */
export const APPLIED_HASH_ANNOTATION = 'serving.analytics.dev/applied-hash';
export const LEADER_LEASE = 'analytics-operator-leader';
/** app.kubernetes.io/part-of of everything the project deploys (the manifests' and the operator's objects). */
export const PART_OF = SERVICE_NAME;
export const LABELS = {
  partOf: 'app.kubernetes.io/part-of',
  name: 'app.kubernetes.io/name',
  component: 'app.kubernetes.io/component',
  managedBy: 'app.kubernetes.io/managed-by',
  model: 'serving.analytics.dev/model',
  version: 'serving.analytics.dev/version',
  modelVersion: 'serving.analytics.dev/model-version',
} as const;

/**
 * The ModelVersion object of model@version: `${model}-${version}` with dots replaced by "-"
 * (iris 1.2.0 → iris-1-2-0). Model and version names are already lowercase DNS-like, so the result
 * is a valid object name; both can be 63 long, so a long one is cut and given a hash suffix.
 */
export function modelVersionName(model: string, version: string): string {
  return fitName(`${model}-${version.replaceAll('.', '-')}`, 253, `${model}@${version}`);
}

/**
 * The import Job of a ModelVersion. Jobs put their name into a pod label, so it must fit 63
 * characters; the uid's hash tells a re-created ModelVersion of the same name from the old one.
 */
export function importJobName(modelVersion: string, uid: string): string {
  return fitName(`import-${modelVersion}-${shortHash(uid, 5)}`, 63, `${modelVersion}/${uid}`);
}

/** `name` if it fits `max`, else its head and a hash of `seed`, ending in a letter or digit. */
function fitName(name: string, max: number, seed: string): string {
  if (name.length <= max) return name;
  const suffix = `-${shortHash(seed, 8)}`;
  return name.slice(0, max - suffix.length).replace(/[-.]+$/, '') + suffix;
}
