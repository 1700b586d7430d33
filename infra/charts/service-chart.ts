import { Chart, Duration, Size } from 'cdk8s';
import * as kplus from 'cdk8s-plus-27';
import type { Construct } from 'constructs';
import { serviceRules } from '../../contract/rbac.ts';
import { figures } from '../../contract/figures.ts';
import { HardenedDeployment, type Resources, resourcesFromFigures } from '../constructs/hardened-deployment.ts';
import { HostFolderClaim } from '../constructs/host-folder-claim.ts';
import { ServiceAccountRole } from '../constructs/service-account-role.ts';
import {
  BACKUPS_PVC,
  CREATE_ONLY_LABEL,
  IMAGE_GID,
  IMAGE_REF,
  IMAGE_UID,
  INGRESS_CLASS,
  KIND_POD_CIDR,
  MODELS_MOUNT_DIR,
  MODELS_PVC,
  NAMESPACE,
  NODE_BACKUPS_DIR,
  NODE_MODELS_DIR,
  REDIS_NAME,
  REDIS_PORT,
  ROUTING_CONFIGMAP,
  ROUTING_KEY,
  SERVICE_GRPC_PORT,
  SERVICE_NAME,
  SERVICE_PORT,
  TOKEN_KEY,
  TOKEN_SECRET,
  labelsFor,
  selectorFor,
} from '../names.ts';

// The inference service: its Deployment (the specification's 2/4 cores and 4/8 GiB), the model
// store and backup volumes, the routing ConfigMap the operator rewrites, its RBAC, the Service,
// the Ingress and a PodDisruptionBudget.

export interface ServiceChartProps {
  namespace?: string;
  image?: string;
  replicas?: number;
  /** Default: the specification's figures (contract/figures.ts). */
  resources?: Resources;
  /** CIDRs of the proxies whose X-Forwarded-For is believed (the ingress controller's pods). */
  trustedProxies?: string;
  modelsStorage?: Size;
  backupsStorage?: Size;
  ingressClassName?: string;
}

/** The paths the Ingress sends to the service: the REST API, the v2 inference protocol, health, the API's page (/docs, /docs/json). */
export const INGRESS_PATHS = ['/api', '/v2', '/health', '/docs'] as const;

export class ServiceChart extends Chart {
  readonly deployment: HardenedDeployment;
  readonly service: kplus.Service;

  constructor(scope: Construct, id: string, props: ServiceChartProps = {}) {
    const namespace = props.namespace ?? NAMESPACE;
    super(scope, id, { namespace });
    const labels = labelsFor(SERVICE_NAME, 'inference');

    // The model store and the backups: host folders of the WSL2 ext4 filesystem, mounted into
    // the kind node (kind-config.yaml), so both outlive `kind delete cluster`. Shared by the
    // service's replicas and the operator's import and backup Jobs, hence ReadWriteMany.
    const models = new HostFolderClaim(this, 'models', {
      name: MODELS_PVC,
      namespace,
      labels,
      nodePath: NODE_MODELS_DIR,
      storage: props.modelsStorage ?? Size.gibibytes(20),
    });
    new HostFolderClaim(this, 'backups', {
      name: BACKUPS_PVC,
      namespace,
      labels: labelsFor(SERVICE_NAME, 'backup'),
      nodePath: NODE_BACKUPS_DIR,
      storage: props.backupsStorage ?? Size.gibibytes(20),
    });

    // Model → version, written by the operator. Created once with no routes; after that the
    // operator owns it, so `make deploy` does not reapply it (CREATE_ONLY_LABEL).
    new kplus.ConfigMap(this, 'routing', {
      metadata: { name: ROUTING_CONFIGMAP, labels: { ...labels, [CREATE_ONLY_LABEL]: 'true' } },
      data: { [ROUTING_KEY]: JSON.stringify({ models: {} }) },
    });

    const rbac = new ServiceAccountRole(this, 'rbac', { name: SERVICE_NAME, namespace, labels, rules: serviceRules });

    const port = SERVICE_PORT;
    const probe = (path: string, opts: kplus.HttpGetProbeOptions) => kplus.Probe.fromHttpGet(path, { port, timeoutSeconds: Duration.seconds(2), ...opts });
    const token = kplus.Secret.fromSecretName(this, 'token', TOKEN_SECRET);
    this.deployment = new HardenedDeployment(this, 'deployment', {
      name: SERVICE_NAME,
      component: 'inference',
      replicas: props.replicas ?? 2,
      // Never below the wanted replicas during a rollout: one new pod first, then one old one goes.
      strategy: kplus.DeploymentStrategy.rollingUpdate({
        maxSurge: kplus.PercentOrAbsolute.absolute(1),
        maxUnavailable: kplus.PercentOrAbsolute.absolute(0),
      }),
      image: props.image ?? IMAGE_REF,
      command: ['node', 'service/main.ts'],
      port: { name: 'http', number: port },
      env: {
        HOST: kplus.EnvValue.fromValue('0.0.0.0'),
        PORT: kplus.EnvValue.fromValue(String(port)),
        GRPC_PORT: kplus.EnvValue.fromValue(String(SERVICE_GRPC_PORT)),
        MODELS_DIR: kplus.EnvValue.fromValue(MODELS_MOUNT_DIR),
        CONTROL_PLANE: kplus.EnvValue.fromValue('kubernetes'),
        REDIS_URL: kplus.EnvValue.fromValue(`redis://${REDIS_NAME}:${REDIS_PORT}`),
        CACHE_TTL_SECONDS: kplus.EnvValue.fromValue(String(figures.cacheTtlSeconds)),
        TRUSTED_PROXIES: kplus.EnvValue.fromValue(props.trustedProxies ?? KIND_POD_CIDR),
        POD_NAMESPACE: kplus.EnvValue.fromFieldRef(kplus.EnvFieldPaths.POD_NAMESPACE),
        API_TOKEN: kplus.EnvValue.fromSecretValue({ secret: token, key: TOKEN_KEY }),
      },
      resources: props.resources ?? resourcesFromFigures(figures.resources),
      // Up to 60 s to start (load the routed models) before liveness counts.
      startup: probe('/health', { periodSeconds: Duration.seconds(2), failureThreshold: 30 }),
      liveness: probe('/health', { periodSeconds: Duration.seconds(10), failureThreshold: 3 }),
      // Ready only when the routing is read and every routed model loaded: a new pod takes traffic
      // once it serves what the others serve. The pods follow the routing ConfigMap through the API
      // (RBAC: that one ConfigMap) and hot-swap versions in place; no routing change rolls them.
      readiness: probe('/ready', { periodSeconds: Duration.seconds(2), failureThreshold: 2 }),
      // A stopping pod first leaves the Service's endpoints (kube-proxy and the ingress stop
      // sending to it while it sleeps), then drains its in-flight requests and exits 0.
      preStopSleepSeconds: 5,
      mounts: [{ path: MODELS_MOUNT_DIR, storage: kplus.Volume.fromPersistentVolumeClaim(this, 'models-volume', models.claim, { name: 'models' }) }],
      serviceAccount: rbac.serviceAccount,
      runAs: { user: IMAGE_UID, group: IMAGE_GID },
      terminationGracePeriod: Duration.seconds(30),
    });
    this.deployment.container.addPort({ name: 'grpc', number: SERVICE_GRPC_PORT });

    this.service = new kplus.Service(this, 'service', {
      metadata: { name: SERVICE_NAME, labels },
      // gRPC on its own port, as KServe has it: in the cluster, analytics-api.analytics:8081.
      ports: [
        { name: 'http', port: 80, targetPort: port },
        { name: 'grpc', port: SERVICE_GRPC_PORT, targetPort: SERVICE_GRPC_PORT },
      ],
    });
    this.service.selectLabel(Object.keys(selectorFor(SERVICE_NAME))[0], SERVICE_NAME);

    // REST only, for the ingress class of the settings (Traefik's, which `make cluster` installs).
    // Traefik sets no limit on request bodies (only its Buffering middleware would, and none is
    // attached), so uploads up to the service's own limit (figures.bodyLimitBytes, a 413 from the
    // service above it) pass, with no annotation. gRPC is not routed: Traefik would speak it to the
    // pods only with the Service annotated for h2c, which applies to every port of the Service, so
    // gRPC is reached in the cluster (analytics-api.analytics:8081) or by port-forward.
    const ingress = new kplus.Ingress(this, 'ingress', {
      metadata: { name: SERVICE_NAME, labels },
      className: props.ingressClassName ?? INGRESS_CLASS,
    });
    for (const path of INGRESS_PATHS) {
      ingress.addRule(path, kplus.IngressBackend.fromService(this.service, { port: 80 }), kplus.HttpIngressPathType.PREFIX);
    }

    new kplus.k8s.KubePodDisruptionBudget(this, 'pdb', {
      metadata: { name: SERVICE_NAME, labels },
      spec: { minAvailable: kplus.k8s.IntOrString.fromNumber(1), selector: { matchLabels: selectorFor(SERVICE_NAME) } },
    });
  }
}
