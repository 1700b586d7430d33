import { ApiObject, type Duration, JsonPatch, Size } from 'cdk8s';
import * as kplus from 'cdk8s-plus-27';
import type { Construct } from 'constructs';
import { labelsFor, selectorFor } from '../names.ts';

// A Deployment with one container, hardened the same way for every workload: non-root with a
// fixed uid, read-only root filesystem (an emptyDir for /tmp), no privilege escalation, every
// capability dropped, the runtime's default seccomp profile, and explicit resources.

/** CPU in cores and memory as a Kubernetes quantity ("4Gi", "128Mi"). */
interface ResourceAmounts {
  cpu: number | string;
  memory: string;
}
export interface Resources {
  requests: ResourceAmounts;
  limits: ResourceAmounts;
}

/** The specification's figures (contract/figures.ts) as Kubernetes resources. */
export function resourcesFromFigures(r: { requests: { cpu: number; memoryGiB: number }; limits: { cpu: number; memoryGiB: number } }): Resources {
  return {
    requests: { cpu: r.requests.cpu, memory: `${r.requests.memoryGiB}Gi` },
    limits: { cpu: r.limits.cpu, memory: `${r.limits.memoryGiB}Gi` },
  };
}

interface Mount {
  path: string;
  storage: kplus.IStorage;
  readOnly?: boolean;
  subPath?: string;
}

export interface HardenedDeploymentProps {
  /** metadata.name, the container's name and the app.kubernetes.io/name label. */
  name: string;
  /** app.kubernetes.io/component. */
  component: string;
  replicas: number;
  image: string;
  command?: string[];
  args?: string[];
  port: { name: string; number: number };
  env?: Record<string, kplus.EnvValue>;
  resources: Resources;
  liveness: kplus.Probe;
  readiness: kplus.Probe;
  startup?: kplus.Probe;
  mounts?: Mount[];
  serviceAccount?: kplus.IServiceAccount;
  /** uid and gid the container runs as (the image's own non-root user). */
  runAs: { user: number; group: number };
  strategy?: kplus.DeploymentStrategy;
  terminationGracePeriod?: Duration;
  /** A preStop hook that waits this long, so the endpoints are gone before the process stops. */
  preStopSleepSeconds?: number;
  /** Size bound of the /tmp emptyDir (default 1Gi). */
  tmpSize?: Size;
}

export class HardenedDeployment extends kplus.Deployment {
  readonly container: kplus.Container;

  constructor(scope: Construct, id: string, props: HardenedDeploymentProps) {
    const labels = labelsFor(props.name, props.component);
    super(scope, id, {
      metadata: { name: props.name, labels },
      replicas: props.replicas,
      strategy: props.strategy,
      // Our own selector (app.kubernetes.io/name) instead of cdk8s's path hash: stable when the
      // code is refactored, and what the Service, NetworkPolicy and PDB select.
      select: false,
      podMetadata: { labels },
      serviceAccount: props.serviceAccount,
      automountServiceAccountToken: props.serviceAccount !== undefined,
      terminationGracePeriod: props.terminationGracePeriod,
      securityContext: {
        ensureNonRoot: true,
        user: props.runAs.user,
        group: props.runAs.group,
        fsGroup: props.runAs.group,
        // Walk the volume only when its root has the wrong group (a large model store).
        fsGroupChangePolicy: kplus.FsGroupChangePolicy.ON_ROOT_MISMATCH,
      },
      containers: [
        {
          name: props.name,
          image: props.image,
          imagePullPolicy: kplus.ImagePullPolicy.IF_NOT_PRESENT,
          command: props.command,
          args: props.args,
          ports: [{ name: props.port.name, number: props.port.number }],
          envVariables: props.env,
          liveness: props.liveness,
          readiness: props.readiness,
          startup: props.startup,
          // Rendered below from the exact quantities.
          resources: {},
          securityContext: {
            ensureNonRoot: true,
            user: props.runAs.user,
            group: props.runAs.group,
            readOnlyRootFilesystem: true,
            allowPrivilegeEscalation: false,
            privileged: false,
          },
        },
      ],
    });
    this.select(kplus.LabelSelector.of({ labels: selectorFor(props.name) }));
    this.container = this.containers[0];
    const tmp = kplus.Volume.fromEmptyDir(this, 'tmp', 'tmp', { sizeLimit: props.tmpSize ?? Size.gibibytes(1) });
    this.container.mount('/tmp', tmp);
    for (const m of props.mounts ?? []) this.container.mount(m.path, m.storage, { readOnly: m.readOnly, subPath: m.subPath });

    // What cdk8s-plus-27 cannot express: seccomp, "drop ALL" and quantities as written ("4Gi",
    // where cdk8s-plus renders "4096Mi"). Its pod address label goes: our selector replaces it.
    const obj = ApiObject.of(this);
    const spec = '/spec/template/spec';
    // Quantity objects: the generated KubeDeployment serializer reads their `.value`.
    const q = (v: number | string) => kplus.k8s.Quantity.fromString(String(v));
    obj.addJsonPatch(
      JsonPatch.add(`${spec}/securityContext/seccompProfile`, { type: 'RuntimeDefault' }),
      JsonPatch.add(`${spec}/containers/0/securityContext/capabilities`, { drop: ['ALL'] }),
      JsonPatch.add(`${spec}/containers/0/resources`, {
        requests: { cpu: q(props.resources.requests.cpu), memory: q(props.resources.requests.memory) },
        limits: { cpu: q(props.resources.limits.cpu), memory: q(props.resources.limits.memory) },
      }),
      JsonPatch.remove(`/spec/template/metadata/labels/${kplus.Pod.ADDRESS_LABEL.replace('/', '~1')}`),
    );
    // The image's own sleep (coreutils): the lifecycle sleep action needs Kubernetes 1.30 or later.
    if (props.preStopSleepSeconds)
      obj.addJsonPatch(JsonPatch.add(`${spec}/containers/0/lifecycle`, { preStop: { exec: { command: ['sleep', String(props.preStopSleepSeconds)] } } }));
  }
}
