import { GROUP, PLURAL } from './model-version.ts';
import { LEADER_LEASE, ROUTING_CONFIGMAP } from './names.ts';

// Least-privilege RBAC rules as data: the manifests (infra/) render them into Roles, and the
// tests check each by impersonation on a real API server (allowed its job, forbidden one step
// beyond). Namespaced: everything lives in the `analytics` namespace.

export interface PolicyRule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
  resourceNames?: string[];
}

const READ = ['get', 'list', 'watch'];

export const operatorRules: PolicyRule[] = [
  // ModelVersions: watched; patched only for the finalizer (server-side apply), never deleted.
  { apiGroups: [GROUP], resources: [PLURAL], verbs: [...READ, 'patch'] },
  { apiGroups: [GROUP], resources: [`${PLURAL}/status`], verbs: ['get', 'patch'] },
  // Owner references with blockOwnerDeletion need update on the owner's finalizers.
  { apiGroups: [GROUP], resources: [`${PLURAL}/finalizers`], verbs: ['update'] },
  // Source ConfigMaps are read; the routing ConfigMap is created and patched by server-side apply
  // (create cannot be limited by name: the name is not known to the authorizer before it exists).
  { apiGroups: [''], resources: ['configmaps'], verbs: [...READ, 'create'] },
  { apiGroups: [''], resources: ['configmaps'], verbs: ['patch'], resourceNames: [ROUTING_CONFIGMAP] },
  // The service's EndpointSlices: which pods are ready, to ask each what it serves.
  { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: READ },
  { apiGroups: ['batch'], resources: ['jobs'], verbs: [...READ, 'create', 'patch'] },
  { apiGroups: ['batch'], resources: ['cronjobs'], verbs: [...READ, 'create', 'patch'] },
  // Import Jobs report their result in the pod's termination message; a pod that cannot start says why.
  { apiGroups: [''], resources: ['pods'], verbs: READ },
  { apiGroups: [''], resources: ['events'], verbs: ['create', 'patch'] },
  // Leader election: create the Lease once, then only this one Lease.
  { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['create'] },
  { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'update', 'patch'], resourceNames: [LEADER_LEASE] },
];

/**
 * The service in Kubernetes mode: uploads create ModelVersions, promote patches their stage; the
 * pods watch the routing ConfigMap (and only that one) to follow what serves.
 */
export const serviceRules: PolicyRule[] = [
  { apiGroups: [GROUP], resources: [PLURAL], verbs: [...READ, 'create', 'patch'] },
  { apiGroups: [''], resources: ['configmaps'], verbs: READ, resourceNames: [ROUTING_CONFIGMAP] },
];
