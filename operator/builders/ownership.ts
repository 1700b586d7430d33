import type { V1OwnerReference } from '@kubernetes/client-node';
import { API_VERSION, KIND } from '../../contract/model-version.ts';
import type { ModelVersion } from '../../contract/model-version.ts';
import { shortHash } from '../../contract/hashing.ts';
import { APPLIED_HASH_ANNOTATION, LABELS, OPERATOR_NAME, PART_OF } from '../../contract/names.ts';

// What marks an object as the operator's: labels to select it by, owner references so the garbage
// collector removes it with its ModelVersion(s), and a hash of the applied content so an unchanged
// object is not applied again.

export function ownerReference(mv: ModelVersion, controller: boolean): V1OwnerReference {
  return {
    apiVersion: API_VERSION,
    kind: KIND,
    name: mv.metadata.name,
    uid: mv.metadata.uid!,
    ...(controller ? { controller: true, blockOwnerDeletion: true } : {}),
  };
}

export function managedLabels(component: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    [LABELS.partOf]: PART_OF,
    [LABELS.managedBy]: OPERATOR_NAME,
    [LABELS.component]: component,
    ...extra,
  };
}

/** The label selector of a component's objects, for an informer. */
export function managedSelector(component: string): string {
  return `${LABELS.managedBy}=${OPERATOR_NAME},${LABELS.component}=${component}`;
}

/** Stamps `obj` with a hash of itself: compare it with the live object's to skip no-op applies. */
export function withAppliedHash<T extends { metadata: { annotations?: Record<string, string> } }>(obj: T): T {
  const hash = shortHash(JSON.stringify(obj), 16);
  obj.metadata.annotations = { ...obj.metadata.annotations, [APPLIED_HASH_ANNOTATION]: hash };
  return obj;
}

export function appliedHashOf(obj: { metadata?: { annotations?: Record<string, string> } } | undefined): string | undefined {
  return obj?.metadata?.annotations?.[APPLIED_HASH_ANNOTATION];
}

/** What every pod the operator creates (import and backup Jobs) shares: run once, no API token, hardened. */
export const jobPodBasics = {
  restartPolicy: 'Never',
  automountServiceAccountToken: false,
  enableServiceLinks: false,
  securityContext: { runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } },
} as const;
