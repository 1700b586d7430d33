import type { V1ConfigMap } from '@kubernetes/client-node';
import { ROUTING_CONFIGMAP, ROUTING_HASH_ANNOTATION, ROUTING_KEY } from '../../contract/names.ts';
import { routingHash, type ModelRoute, type Routing } from '../../contract/routing.ts';

// The routing ConfigMap `analytics-api-routing`: routing.json says which version serves each model
// (the service's pods watch it). The manifests create it (empty); the operator owns only its data
// and the hash annotation, so its labels stay the manifests'. It belongs to the namespace, not to a
// ModelVersion: it stays, with `{"models": {}}`, when the last version goes.

export function routingConfigMap(namespace: string, text: string) {
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: {
      name: ROUTING_CONFIGMAP,
      namespace,
      annotations: { [ROUTING_HASH_ANNOTATION]: routingHash(text) },
    },
    data: { [ROUTING_KEY]: text },
  };
}

/** The routing.json the API server holds, if the ConfigMap exists. */
export function appliedRoutingText(cm: V1ConfigMap | undefined): string | undefined {
  return cm?.data?.[ROUTING_KEY];
}

/** Models whose serving version differs between two routings: "iris 1 → 2", "wine (none) → 3". */
export function routingChanges(before: Routing | undefined, after: Routing): string[] {
  const models = new Set([...Object.keys(before?.models ?? {}), ...Object.keys(after.models)]);
  const canary = (r: ModelRoute | undefined) =>
    r?.canary ? `${r.canary.version} ${r.canary.mode === 'shadow' ? 'as a shadow' : `at ${r.canary.weight} %`}` : undefined;
  const changes: string[] = [];
  for (const m of [...models].sort()) {
    const a = before?.models[m];
    const b = after.models[m];
    if (a?.version !== b?.version) changes.push(`${m} ${a?.version ?? '(none)'} → ${b?.version ?? '(none)'}`);
    if (canary(a) !== canary(b)) changes.push(`${m} canary ${canary(a) ?? '(none)'} → ${canary(b) ?? '(none)'}`);
  }
  return changes;
}
