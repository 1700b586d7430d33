import { AppsV1Api, BatchV1Api, CoordinationV1Api, CoreV1Api, CustomObjectsApi, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import type { KubeConfig, KubernetesObject } from '@kubernetes/client-node';
import { API_VERSION, GROUP, KIND, PLURAL, VERSION } from '../../contract/model-version.ts';
import type { ModelVersionStatus } from '../../contract/model-version.ts';
import { FIELD_MANAGER } from '../../contract/names.ts';

// The API calls the operator makes, in one place. Every write is a server-side apply under the
// field manager `analytics-operator`: the operator states the fields it owns, the API server merges,
// and applying the same object again changes nothing. Lists come back as plain JSON (the shape watch
// events have), so an informer's cache holds one kind of object whatever filled it.

const APPLY = setHeaderOptions('Content-Type', PatchStrategy.ServerSideApply);

/** The object an apply sends: apiVersion, kind, metadata.name and the fields the operator owns. */
export interface ApplyObject extends KubernetesObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; [k: string]: unknown };
  [k: string]: unknown;
}

export interface PlainList<T> {
  apiVersion?: string;
  kind?: string;
  metadata?: { resourceVersion?: string };
  items: T[];
}

export class KubeClient {
  readonly kc: KubeConfig;
  readonly core: CoreV1Api;
  readonly apps: AppsV1Api;
  readonly batch: BatchV1Api;
  readonly custom: CustomObjectsApi;
  readonly coordination: CoordinationV1Api;

  constructor(kc: KubeConfig) {
    this.kc = kc;
    this.core = kc.makeApiClient(CoreV1Api);
    this.apps = kc.makeApiClient(AppsV1Api);
    this.batch = kc.makeApiClient(BatchV1Api);
    this.custom = kc.makeApiClient(CustomObjectsApi);
    this.coordination = kc.makeApiClient(CoordinationV1Api);
  }

  /** Server-side apply (force: the operator's fields are its own) of a ConfigMap, Job, CronJob, Deployment or ModelVersion. */
  async apply(obj: ApplyObject): Promise<KubernetesObject> {
    const name = obj.metadata.name;
    const namespace = obj.metadata.namespace;
    if (!namespace) throw new Error(`apply ${obj.kind} ${name}: no namespace`);
    const req = { name, namespace, body: obj, fieldManager: FIELD_MANAGER, force: true };
    switch (`${obj.apiVersion}/${obj.kind}`) {
      case 'v1/ConfigMap':
        return await this.core.patchNamespacedConfigMap(req, APPLY);
      case 'batch/v1/Job':
        return await this.batch.patchNamespacedJob(req, APPLY);
      case 'batch/v1/CronJob':
        return await this.batch.patchNamespacedCronJob(req, APPLY);
      case 'apps/v1/Deployment':
        return await this.apps.patchNamespacedDeployment(req, APPLY);
      case `${API_VERSION}/${KIND}`:
        return (await this.custom.patchNamespacedCustomObject({ group: GROUP, version: VERSION, plural: PLURAL, ...req }, APPLY)) as KubernetesObject;
      default:
        throw new Error(`apply: the operator does not write ${obj.apiVersion} ${obj.kind}`);
    }
  }

  /** Server-side apply of a ModelVersion's status subresource (the status the operator owns, whole). */
  async applyModelVersionStatus(namespace: string, name: string, status: ModelVersionStatus): Promise<void> {
    const body = { apiVersion: API_VERSION, kind: KIND, metadata: { name, namespace }, status };
    await this.custom.patchNamespacedCustomObjectStatus(
      { group: GROUP, version: VERSION, plural: PLURAL, namespace, name, body, fieldManager: FIELD_MANAGER, force: true },
      APPLY,
    );
  }

  /** A JSON patch (RFC 6902) of a ModelVersion, for the one edit apply cannot make: dropping a list entry another manager co-owns. */
  async jsonPatchModelVersion(namespace: string, name: string, ops: unknown[]): Promise<void> {
    await this.custom.patchNamespacedCustomObject(
      { group: GROUP, version: VERSION, plural: PLURAL, namespace, name, body: ops, fieldManager: FIELD_MANAGER },
      setHeaderOptions('Content-Type', PatchStrategy.JsonPatch),
    );
  }

  /** A namespaced collection of an API group (apps, batch, serving.analytics.dev) as plain JSON. */
  async listPlain<T>(group: string, version: string, plural: string, namespace: string, labelSelector?: string, fieldSelector?: string): Promise<PlainList<T>> {
    return (await this.custom.listNamespacedCustomObject({ group, version, namespace, plural, labelSelector, fieldSelector })) as PlainList<T>;
  }
}
