import { CustomObjectsApi, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import type { KubeConfig } from '@kubernetes/client-node';
import { API_VERSION, GROUP, KIND, ModelVersionSpec, PLURAL, VERSION } from './api/model-version.ts';
import type { ModelVersion, Stage } from './api/model-version.ts';
import { describeError, isAlreadyExists, isNotFound } from './api-errors.ts';
import { LABELS, modelVersionName } from './names.ts';

// ModelVersions for the service in Kubernetes mode: an upload stores the artifact and creates a
// ModelVersion with a storePath source; promote (or archive) sets its stage. The operator does the
// rest. The service's own field manager, so `kubectl get mv -o yaml --show-managed-fields` tells
// who asked for what.

export const SERVICE_FIELD_MANAGER = 'analytics-api';

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
}

export type ModelVersionClientErrorCode = 'INVALID' | 'EXISTS' | 'NOT_FOUND' | 'API';

export class ModelVersionClientError extends Error {
  readonly code: ModelVersionClientErrorCode;
  constructor(code: ModelVersionClientErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}

const api = (kc: KubeConfig) => kc.makeApiClient(CustomObjectsApi);
const ref = { group: GROUP, version: VERSION, plural: PLURAL };

/**
 * Creates the ModelVersion `${model}-${version}` (dots → "-"). Creating it again with the same
 * model, version and sha256 is a no-op (a retried upload); anything else under that name is EXISTS.
 */
export async function createModelVersion(kc: KubeConfig, namespace: string, input: NewModelVersion): Promise<void> {
  const source = input.storePath !== undefined ? { storePath: input.storePath } : input.url !== undefined ? { url: input.url } : input.configMapRef ? { configMapRef: input.configMapRef } : {};
  const parsed = ModelVersionSpec.safeParse({
    model: input.model,
    version: input.version,
    source,
    ...(input.sha256 !== undefined ? { sha256: input.sha256 } : {}),
    ...(input.features !== undefined ? { features: input.features } : {}),
    ...(input.metadata !== undefined ? { metadata: input.metadata } : {}),
    ...(input.stage !== undefined ? { stage: input.stage } : {}),
  });
  if (!parsed.success) throw new ModelVersionClientError('INVALID', parsed.error.issues.map((i) => `${i.path.join('.') || 'spec'}: ${i.message}`).join('; '));
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
    if (!isAlreadyExists(err)) throw new ModelVersionClientError('API', `creating ModelVersion ${namespace}/${name}: ${describeError(err)}`);
    const existing = (await api(kc).getNamespacedCustomObject({ ...ref, namespace, name })) as ModelVersion;
    const same = existing.spec.model === input.model && existing.spec.version === input.version && existing.spec.sha256 === input.sha256;
    if (same) return;
    throw new ModelVersionClientError('EXISTS', `ModelVersion ${namespace}/${name} already exists for ${existing.spec.model}@${existing.spec.version} with other content; versions are immutable`);
  }
}

/** Sets the stage of model@version (Production promotes, Archived retires; the operator rolls the service). */
export async function setStage(kc: KubeConfig, namespace: string, model: string, version: string, stage: Stage): Promise<void> {
  const name = modelVersionName(model, version);
  try {
    await api(kc).patchNamespacedCustomObject(
      { ...ref, namespace, name, body: { spec: { stage } }, fieldManager: SERVICE_FIELD_MANAGER },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
  } catch (err) {
    if (isNotFound(err)) throw new ModelVersionClientError('NOT_FOUND', `no ModelVersion ${namespace}/${name} for ${model}@${version}`);
    throw new ModelVersionClientError('API', `setting the stage of ModelVersion ${namespace}/${name}: ${describeError(err)}`);
  }
}

/** The ModelVersion of model@version, or undefined. */
export async function getModelVersion(kc: KubeConfig, namespace: string, model: string, version: string): Promise<ModelVersion | undefined> {
  try {
    return (await api(kc).getNamespacedCustomObject({ ...ref, namespace, name: modelVersionName(model, version) })) as ModelVersion;
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw new ModelVersionClientError('API', describeError(err));
  }
}
