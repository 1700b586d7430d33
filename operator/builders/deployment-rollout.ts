import type { V1Deployment } from '@kubernetes/client-node';
import { ROUTING_HASH_ANNOTATION } from '../../contract/names.ts';

// The service Deployment follows the routing: a hash of routing.json on its pod template makes a
// new ReplicaSet (maxUnavailable 0 and the readiness probe keep answers flowing), and its status
// tells when the new pods are all available. The operator owns only that one annotation (server-side
// apply): the Deployment itself comes from the manifests.

export function rolloutPatch(namespace: string, name: string, hash: string) {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace },
    spec: { template: { metadata: { annotations: { [ROUTING_HASH_ANNOTATION]: hash } } } },
  };
}

export function stampedHash(deployment: V1Deployment | undefined): string | undefined {
  return deployment?.spec?.template?.metadata?.annotations?.[ROUTING_HASH_ANNOTATION];
}

export type RolloutState =
  | { state: 'missing'; message: string }
  | { state: 'pending'; message: string }
  | { state: 'progressing'; message: string }
  | { state: 'complete'; message: string };

/**
 * Whether the Deployment runs routing `hash` everywhere: stamped with it, observed by the deployment
 * controller, every replica updated and available and no old one left (kubectl rollout status).
 */
export function rolloutState(deployment: V1Deployment | undefined, name: string, hash: string): RolloutState {
  if (!deployment) return { state: 'missing', message: `Deployment ${name} not found; the routing is written, nothing serves it` };
  if (stampedHash(deployment) !== hash) return { state: 'pending', message: `Deployment ${name} is not yet on routing ${hash}` };
  const generation = deployment.metadata?.generation ?? 0;
  const st = deployment.status ?? {};
  if ((st.observedGeneration ?? 0) < generation) return { state: 'progressing', message: `Deployment ${name}: waiting for the rollout to start` };
  const progressing = st.conditions?.find((c) => c.type === 'Progressing');
  if (progressing?.reason === 'ProgressDeadlineExceeded')
    return { state: 'progressing', message: `Deployment ${name} exceeded its progress deadline: ${progressing.message ?? ''}` };
  const want = deployment.spec?.replicas ?? 1;
  const updated = st.updatedReplicas ?? 0;
  const total = st.replicas ?? 0;
  const available = st.availableReplicas ?? 0;
  if (updated < want) return { state: 'progressing', message: `Deployment ${name}: ${updated} of ${want} pods updated` };
  if (total > updated) return { state: 'progressing', message: `Deployment ${name}: ${total - updated} old pods terminating` };
  if (available < updated) return { state: 'progressing', message: `Deployment ${name}: ${available} of ${updated} updated pods available` };
  return { state: 'complete', message: `Deployment ${name} rolled out: ${available} of ${want} pods available` };
}
