import { Chart, Duration, Size } from 'cdk8s';
import * as kplus from 'cdk8s-plus-27';
import type { Construct } from 'constructs';
import { HardenedDeployment, type Resources } from '../constructs/hardened-deployment.ts';
import { NAMESPACE, REDIS_DATA_DIR, REDIS_NAME, REDIS_PORT, REDIS_PVC, SERVICE_NAME, labelsFor, selectorFor } from '../names.ts';

// The prediction cache: one Redis with its append-only file on a PersistentVolumeClaim (the
// backups archive REDIS_DATA_DIR), a Service, and a NetworkPolicy that lets only the inference
// service's pods reach it.

export interface RedisChartProps {
  namespace?: string;
  image?: string;
  storage?: Size;
  resources?: Resources;
  /** The pods allowed to connect (app.kubernetes.io/name). */
  clientName?: string;
}

// The image's own redis user and group (uid 999, gid 1000 in the Alpine variant).
const REDIS_UID = 999;
const REDIS_GID = 1000;

export class RedisChart extends Chart {
  constructor(scope: Construct, id: string, props: RedisChartProps = {}) {
    const namespace = props.namespace ?? NAMESPACE;
    super(scope, id, { namespace });
    const labels = labelsFor(REDIS_NAME, 'cache');

    const data = new kplus.PersistentVolumeClaim(this, 'data', {
      metadata: { name: REDIS_PVC, labels },
      accessModes: [kplus.PersistentVolumeAccessMode.READ_WRITE_ONCE],
      storage: props.storage ?? Size.gibibytes(1),
    });

    new HardenedDeployment(this, 'redis', {
      name: REDIS_NAME,
      component: 'cache',
      replicas: 1,
      // One writer of the append-only file: the old pod stops before the new one starts.
      strategy: kplus.DeploymentStrategy.recreate(),
      image: props.image ?? 'redis:7-alpine',
      command: ['redis-server', '--appendonly', 'yes', '--dir', REDIS_DATA_DIR],
      port: { name: 'redis', number: REDIS_PORT },
      resources: props.resources ?? {
        requests: { cpu: '100m', memory: '128Mi' },
        limits: { cpu: 1, memory: '1Gi' },
      },
      liveness: kplus.Probe.fromTcpSocket({ port: REDIS_PORT, periodSeconds: Duration.seconds(10) }),
      readiness: kplus.Probe.fromCommand(['redis-cli', 'ping'], { periodSeconds: Duration.seconds(5) }),
      mounts: [{ path: REDIS_DATA_DIR, storage: kplus.Volume.fromPersistentVolumeClaim(this, 'data-volume', data, { name: 'data' }) }],
      runAs: { user: REDIS_UID, group: REDIS_GID },
    });

    new kplus.Service(this, 'service', {
      metadata: { name: REDIS_NAME, labels },
      ports: [{ name: 'redis', port: REDIS_PORT, targetPort: REDIS_PORT }],
    }).selectLabel(Object.keys(selectorFor(REDIS_NAME))[0], REDIS_NAME);

    const policy = new kplus.NetworkPolicy(this, 'network-policy', {
      metadata: { name: REDIS_NAME, labels },
      selector: kplus.Pods.select(this, 'redis-pods', { labels: selectorFor(REDIS_NAME) }),
      ingress: { default: kplus.NetworkPolicyTrafficDefault.DENY },
    });
    const clients = kplus.Pods.select(this, 'clients', { labels: selectorFor(props.clientName ?? SERVICE_NAME) });
    policy.addIngressRule(clients, [kplus.NetworkPolicyPort.tcp(REDIS_PORT)]);
  }
}
