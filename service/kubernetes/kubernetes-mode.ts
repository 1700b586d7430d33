import { KubeConfig } from '@kubernetes/client-node';
import type { FastifyBaseLogger } from 'fastify';
import type { ModelRegistry } from '../serving/model-registry.ts';
import { kubernetesModelVersions } from './model-versions.ts';
import { followRouting, type ModelVersionApi } from './routing-follower.ts';

// CONTROL_PLANE=kubernetes, loaded only then (client-node is not needed standalone): ModelVersion
// calls for uploads and promotes, and the routing followed from its ConfigMap.

export interface KubernetesMode {
  modelVersions: ModelVersionApi;
  follow(registry: ModelRegistry, log: FastifyBaseLogger): { stop(): Promise<void> };
}

/** `kc`: the API server (default: in a pod its ServiceAccount, else the current kubeconfig). */
export function kubernetesMode(namespace: string, kc: KubeConfig = defaultKubeConfig(), modelVersions?: ModelVersionApi): KubernetesMode {
  return {
    modelVersions: modelVersions ?? kubernetesModelVersions(namespace, kc),
    follow: (registry, log) => followRouting({ kc, namespace, registry, log }),
  };
}

function defaultKubeConfig(): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromDefault();
  return kc;
}
