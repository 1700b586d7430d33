import { API_VERSION, KIND } from '../../contract/model-version.ts';
import type { ModelVersion } from '../../contract/model-version.ts';
import type { KubeClient } from '../runtime/kube-client.ts';
import { FINALIZER } from '../../contract/names.ts';

// The operator's finalizer on a ModelVersion: deleting one first takes it out of the routing (and
// rolls the service off it), then releases the object. Added and removed by server-side apply: the
// operator owns just its entry of metadata.finalizers, and the uid makes the apply a precondition
// (it cannot re-create an object deleted meanwhile).

export const hasFinalizer = (mv: ModelVersion) => mv.metadata.finalizers?.includes(FINALIZER) ?? false;

async function applyFinalizers(kube: KubeClient, mv: ModelVersion, finalizers: string[]): Promise<string[]> {
  const applied = await kube.apply({
    apiVersion: API_VERSION,
    kind: KIND,
    metadata: { name: mv.metadata.name, namespace: mv.metadata.namespace, uid: mv.metadata.uid, ...(finalizers.length ? { finalizers } : {}) },
  });
  return applied.metadata?.finalizers ?? [];
}

export async function addFinalizer(kube: KubeClient, mv: ModelVersion): Promise<void> {
  await applyFinalizers(kube, mv, [FINALIZER]);
}

/**
 * Applying without the entry gives it up; with no other owner the API server removes it. If someone
 * else also claimed the entry (kubectl edit, a user's server-side apply), a JSON patch removes it,
 * guarded by a test of the entry: a finalizer that never goes would block the deletion for ever.
 */
export async function removeFinalizer(kube: KubeClient, mv: ModelVersion): Promise<void> {
  const left = await applyFinalizers(kube, mv, []);
  const i = left.indexOf(FINALIZER);
  if (i < 0) return;
  const path = `/metadata/finalizers/${i}`;
  await kube.jsonPatchModelVersion(mv.metadata.namespace!, mv.metadata.name, [
    { op: 'test', path: '/metadata/uid', value: mv.metadata.uid },
    { op: 'test', path, value: FINALIZER },
    { op: 'remove', path },
  ]);
}
