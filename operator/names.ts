// Names users rely on (DESIGN.md), stated once for the operator, the manifests and the tests.
export const NAMESPACE = 'analytics';
export const SERVICE_NAME = 'analytics-api';
export const IMAGE = 'analytics-api';
export const OPERATOR_NAME = 'analytics-operator';
export const ROUTING_CONFIGMAP = 'analytics-api-routing';
/** The key of the routing ConfigMap, mounted as a file into the service's pods. */
export const ROUTING_KEY = 'routing.json';
export const ROUTING_MOUNT_DIR = '/etc/analytics-api/routing';
export const MODELS_MOUNT_DIR = '/app/models';
export const REDIS_DATA_DIR = '/data/redis';
export const backupCronJobName = (model: string) => `analytics-backup-${model}`;
export const FIELD_MANAGER = 'analytics-operator';
export const FINALIZER = 'serving.analytics.dev/finalizer';
/** Pod template annotation holding a hash of the routing: a new hash rolls the Deployment. */
export const ROUTING_HASH_ANNOTATION = 'serving.analytics.dev/routing-hash';
export const LEADER_LEASE = 'analytics-operator-leader';
export const LABELS = {
  partOf: 'app.kubernetes.io/part-of',
  name: 'app.kubernetes.io/name',
  component: 'app.kubernetes.io/component',
  managedBy: 'app.kubernetes.io/managed-by',
  model: 'serving.analytics.dev/model',
} as const;
