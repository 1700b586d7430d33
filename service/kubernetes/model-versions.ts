import { CustomObjectsApi, type KubeConfig, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { describeError, isAlreadyExists, isNotFound } from '../../contract/kubernetes-errors.ts';
import { modelFilePath } from '../../contract/store-layout.ts';
import { API_VERSION, GROUP, KIND, ModelVersionSpec, PLURAL, VERSION, type ModelVersion, type Stage } from '../../contract/model-version.ts';
import { LABELS, modelVersionName } from '../../contract/names.ts';
import type { RolloutSpecInput } from '../../contract/rollout.ts';
import { ServiceError } from '../errors.ts';
import type { ModelVersionApi } from './routing-follower.ts';

// ModelVersions for the service in Kubernetes mode: an upload stores the artifact and creates a
// ModelVersion with a storePath source; promote (or archive) sets its stage. The operator does the
// rest. The service's own field manager, so `kubectl get mv -o yaml --show-managed-fields` tells
// who asked for what. Failures are ServiceErrors with the status a client should see: a spec the
// CRD refuses is a 400, another object under the name a 409, a missing one a 404, and the API
// server being unreachable (or refusing the service's account) a 503.

const SERVICE_FIELD_MANAGER = 'analytics-api';

export interface NewModelVersion {
  model: string;
  version: string;
  /** Path inside the model store; exactly one of storePath, url, configMapRef. */
  storePath?: string;
  url?: string;
  configMapRef?: { name: string; key: string };
  sha256?: string;
  features?: string[];
  metadata?: Record<string, unknown>;
  stage?: Stage;
  rollout?: RolloutSpecInput;
}

const api = (kc: KubeConfig) => kc.makeApiClient(CustomObjectsApi);
const ref = { group: GROUP, version: VERSION, plural: PLURAL };
const unavailable = (what: string, err: unknown) => new ServiceError('KUBERNETES_UNAVAILABLE', `${what}: ${describeError(err)}`);

/**
 * Creates the ModelVersion `${model}-${version}` (dots → "-"). Creating it again with the same
 * model, version and sha256 is a no-op (a retried upload); anything else under that name is a 409.
 */
export async function createModelVersion(kc: KubeConfig, namespace: string, input: NewModelVersion): Promise<void> {
  const source =
    input.storePath !== undefined
      ? { storePath: input.storePath }
      : input.url !== undefined
        ? { url: input.url }
        : input.configMapRef
          ? { configMapRef: input.configMapRef }
          : {};
  const parsed = ModelVersionSpec.safeParse({
    model: input.model,
    version: input.version,
    source,
    ...(input.sha256 !== undefined ? { sha256: input.sha256 } : {}),
    ...(input.features !== undefined ? { features: input.features } : {}),
    ...(input.metadata !== undefined ? { metadata: input.metadata } : {}),
    ...(input.stage !== undefined ? { stage: input.stage } : {}),
    ...(input.rollout !== undefined ? { rollout: input.rollout } : {}),
  });
  if (!parsed.success) throw new ServiceError('VALIDATION_FAILED', parsed.error.issues.map((i) => `${i.path.join('.') || 'spec'}: ${i.message}`).join('; '));
  const name = modelVersionName(input.model, input.version);
  const body: ModelVersion = {
    apiVersion: API_VERSION,
    kind: KIND,
    metadata: { name, namespace, labels: { [LABELS.model]: input.model, [LABELS.version]: input.version.slice(0, 63) } },
    spec: parsed.data,
  };
  try {
    await api(kc).createNamespacedCustomObject({ ...ref, namespace, body, fieldManager: SERVICE_FIELD_MANAGER });
  } catch (err) {
    if (!isAlreadyExists(err)) throw unavailable(`creating ModelVersion ${namespace}/${name}`, err);
    const existing = await getModelVersion(kc, namespace, input.model, input.version);
    if (existing && existing.spec.model === input.model && existing.spec.version === input.version && existing.spec.sha256 === input.sha256) return;
    throw new ServiceError(
      'VERSION_EXISTS',
      `ModelVersion ${namespace}/${name} already exists for ${existing?.spec.model}@${existing?.spec.version} with other content; versions are immutable`,
    );
  }
}

/** Sets the stage of model@version (Production promotes, Archived retires; the operator does the rest). */
export async function setStage(kc: KubeConfig, namespace: string, model: string, version: string, stage: Stage, rollout?: RolloutSpecInput): Promise<void> {
  const name = modelVersionName(model, version);
  try {
    await api(kc).patchNamespacedCustomObject(
      { ...ref, namespace, name, body: { spec: { stage, ...(rollout ? { rollout } : {}) } }, fieldManager: SERVICE_FIELD_MANAGER },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
  } catch (err) {
    if (isNotFound(err)) throw new ServiceError('VERSION_NOT_FOUND', `no ModelVersion ${namespace}/${name} for ${model}@${version}`);
    throw unavailable(`setting the stage of ModelVersion ${namespace}/${name}`, err);
  }
}

/** The ModelVersion of model@version, or undefined. */
export async function getModelVersion(kc: KubeConfig, namespace: string, model: string, version: string): Promise<ModelVersion | undefined> {
  const name = modelVersionName(model, version);
  try {
    return (await api(kc).getNamespacedCustomObject({ ...ref, namespace, name })) as ModelVersion;
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw unavailable(`reading ModelVersion ${namespace}/${name}`, err);
  }
}

/** ModelVersionApi on the API server: in a pod, its ServiceAccount; on a host, the current kubeconfig. */
export function kubernetesModelVersions(namespace: string, kc: KubeConfig): ModelVersionApi {
  return {
    create: (meta, stage, rollout) =>
      createModelVersion(kc, namespace, {
        model: meta.name,
        version: meta.version,
        storePath: modelFilePath(meta.name, meta.version),
        sha256: meta.sha256,
        features: meta.features,
        metadata: meta.metadata,
        stage,
        ...(rollout ? { rollout } : {}),
      }),
    setStage: (model, version, stage, rollout) => setStage(kc, namespace, model, version, stage, rollout),
  };
}
