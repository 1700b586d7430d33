import type { RolloutSpecInput } from '../../contract/rollout.ts';
import { CoreV1Api, type KubeConfig, ListWatch, Watch, type KubernetesListObject, type V1ConfigMap } from '@kubernetes/client-node';
import type { FastifyBaseLogger } from 'fastify';
import { describeError } from '../../contract/kubernetes-errors.ts';
import { ROUTING_CONFIGMAP, ROUTING_KEY } from '../../contract/names.ts';
import { parseRouting } from '../../contract/routing.ts';
import type { ModelRegistry } from '../serving/model-registry.ts';
import type { VersionMetadata } from '../store/model-store.ts';

// The service under the operator (CONTROL_PLANE=kubernetes): ModelVersion resources decide what
// serves. The operator writes the routing ConfigMap; every service pod watches it through the API
// (a mounted ConfigMap changes only at the kubelet's next sync, a minute or more later) and
// hot-swaps the versions in place, as a promote does in standalone mode: a routing change never
// restarts a pod. An upload stores the artifact and creates a ModelVersion; promote asks for the
// Production stage (model-versions.ts).

/** The Kubernetes side of uploads and promotes (an implementation talks to the API server). */
export interface ModelVersionApi {
  create(meta: VersionMetadata, stage: 'Production' | 'Staging', rollout?: RolloutSpecInput): Promise<void>;
  /** With `rollout`: also sets spec.rollout (a canary or shadow against the version serving now). */
  setStage(model: string, version: string, stage: 'Production' | 'Staging' | 'Archived', rollout?: RolloutSpecInput): Promise<void>;
}

const RESTART_MAX_MS = 5_000;

/**
 * Watches the routing ConfigMap and applies each routing it holds, the latest first when several
 * arrive during a swap. The watch restarts by itself (with a capped backoff) after the API server
 * goes away; the routing last applied keeps serving meanwhile.
 */
export function followRouting(options: { kc: KubeConfig; namespace: string; registry: ModelRegistry; log: FastifyBaseLogger }): { stop(): Promise<void> } {
  const { kc, namespace, registry } = options;
  const log = options.log.child({ component: 'routing' });
  const core = kc.makeApiClient(CoreV1Api);
  const fieldSelector = `metadata.name=${ROUTING_CONFIGMAP}`;
  const list = () => core.listNamespacedConfigMap({ namespace, fieldSelector }) as Promise<KubernetesListObject<V1ConfigMap>>;
  const watch = new ListWatch<V1ConfigMap>(`/api/v1/namespaces/${namespace}/configmaps`, new Watch(kc), list, false, undefined, fieldSelector);

  let wanted: string | undefined;
  let applied: string | undefined;
  let applying = false;
  const applyLatest = async () => {
    if (applying) return;
    applying = true;
    try {
      while (wanted !== applied) {
        const text = wanted;
        applied = text;
        const routing = parseRouting(text);
        if (!routing) {
          log.error({ configMap: ROUTING_CONFIGMAP }, `${ROUTING_KEY} is missing or not valid routing; keeping the current routing`);
          continue;
        }
        await registry.applyRouting(new Map(Object.entries(routing.models)));
      }
    } finally {
      applying = false;
    }
  };
  const follow = (cm: V1ConfigMap) => {
    wanted = cm.data?.[ROUTING_KEY];
    applyLatest().catch((err: unknown) => log.error({ err: describeError(err) }, 'applying the routing failed'));
  };
  watch.on('add', follow);
  watch.on('update', follow);
  watch.on('delete', () => log.warn({ configMap: ROUTING_CONFIGMAP }, 'the routing ConfigMap was deleted; serving the last routing until it is back'));

  let stopped = false;
  let delay = 250;
  let timer: NodeJS.Timeout | undefined;
  const start = () => {
    watch.start().then(() => {
      delay = 250;
    }, restart);
  };
  function restart(err: unknown) {
    if (stopped) return;
    log.warn({ err: describeError(err), delayMs: delay }, 'watching the routing ConfigMap failed; trying again');
    timer = setTimeout(start, delay);
    delay = Math.min(delay * 2, RESTART_MAX_MS);
  }
  watch.on('error', restart);
  start();

  return {
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await watch.stop();
    },
  };
}
