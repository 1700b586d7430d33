import {
  BACKUPS_PVC,
  IMAGE,
  LABELS,
  MODELS_MOUNT_DIR,
  MODELS_PVC,
  NAMESPACE,
  OPERATOR_NAME,
  PART_OF,
  REDIS_DATA_DIR,
  ROUTING_CONFIGMAP,
  ROUTING_KEY,
  SERVICE_NAME,
} from '../contract/names.ts';

// Names only the manifests, their scripts and their tests use. The names users rely on
// (namespace, Deployments, routing ConfigMap, ...) live in contract/names.ts and are imported.

/** The image every workload runs (`make images` builds and loads it into kind). */
export const IMAGE_REF = `${IMAGE}:latest`;

/** The image's non-root user and group (the `node` user of node:24-bookworm-slim; the Dockerfile's USER). */
export const IMAGE_UID = 1000;
export const IMAGE_GID = 1000;

/** The kind cluster's name (`kind-analytics` is then its kubectl context). */
export const KIND_CLUSTER = 'analytics';

/** Redis's append-only file (the claims of the model store and the backups are in contract/names.ts). */
export const REDIS_PVC = 'redis-data';

/**
 * Where the kind node sees the host folders (kind-config.yaml's extraMounts): the models and
 * backups live on the WSL2 ext4 filesystem and outlive the cluster.
 */
export const NODE_MODELS_DIR = '/var/local/analytics-models';
export const NODE_BACKUPS_DIR = '/var/local/analytics-backups';

/** The API token Secret `make deploy` creates (random) when it is missing; never committed. */
export const TOKEN_SECRET = 'analytics-api-token';
export const TOKEN_KEY = 'token';

export const REDIS_NAME = 'redis';
export const REDIS_PORT = 6379;
export const SERVICE_PORT = 8080;
/** The service's Open Inference Protocol over gRPC (its GRPC_PORT; 8081 as in KServe), on the pod and the Service. */
export const SERVICE_GRPC_PORT = 8081;
export const OPERATOR_METRICS_PORT = 8081;

/**
 * Objects with this label are created once and then left alone by `make deploy`: the routing
 * ConfigMap starts empty, then belongs to the operator (its server-side apply field manager).
 */
export const CREATE_ONLY_LABEL = 'serving.analytics.dev/create-only';

/**
 * The ingress class of the Traefik that `make cluster` installs (infra/traefik-values.yaml names its
 * IngressClass so) and the tests' controller watches (test/k8s/ingress.ts): the default of the settings.
 */
export const INGRESS_CLASS = 'traefik';

/**
 * A cluster-wide name (a PersistentVolume, a folder of the node) of something that belongs to one
 * namespace: as it is in the default namespace, suffixed with the namespace in any other, so
 * installs in several namespaces never share a volume or a model store. The Helm chart's
 * `analytics-api.perNamespace` template is the same rule.
 */
export function perNamespace(name: string, namespace: string): string {
  return namespace === NAMESPACE ? name : `${name}-${namespace}`;
}

/** The kind pod network: the ingress controller's address is in it, so its X-Forwarded-For is believed. */
export const KIND_POD_CIDR = '10.244.0.0/16';

/** Labels every object carries, and the selector labels of each workload. */
export function labelsFor(name: string, component: string): Record<string, string> {
  return { [LABELS.name]: name, [LABELS.component]: component, [LABELS.partOf]: PART_OF, [LABELS.managedBy]: 'cdk8s' };
}
export function selectorFor(name: string): Record<string, string> {
  return { [LABELS.name]: name };
}

export { BACKUPS_PVC, LABELS, MODELS_MOUNT_DIR, MODELS_PVC, NAMESPACE, OPERATOR_NAME, PART_OF, REDIS_DATA_DIR, ROUTING_CONFIGMAP, ROUTING_KEY, SERVICE_NAME };
