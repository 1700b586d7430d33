import { KubeConfig } from '@kubernetes/client-node';
import { createModelVersion, setStage } from '../operator/model-version-client.ts';
import type { ModelVersionApi } from './kubernetes-mode.ts';

// ModelVersionApi on the API server: in a pod, its ServiceAccount; on a host, the current kubeconfig.
export function kubernetesModelVersions(namespace: string, kc: KubeConfig = defaultKubeConfig()): ModelVersionApi {
  return {
    create: (meta, stage) =>
      createModelVersion(kc, namespace, {
        model: meta.name,
        version: meta.version,
        storePath: `production/${meta.name}/${meta.version}/model.onnx`,
        sha256: meta.sha256,
        features: meta.features,
        metadata: meta.metadata,
        stage,
      }),
    setStage: (model, version, stage) => setStage(kc, namespace, model, version, stage),
  };
}

function defaultKubeConfig(): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromDefault();
  return kc;
}
