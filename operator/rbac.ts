import { GROUP, PLURAL } from './api/model-version.ts';

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
  { apiGroups: [GROUP], resources: [PLURAL], verbs: [...READ, 'update', 'patch'] },
  { apiGroups: [GROUP], resources: [`${PLURAL}/status`], verbs: ['get', 'update', 'patch'] },
  { apiGroups: [GROUP], resources: [`${PLURAL}/finalizers`], verbs: ['update'] },
  // Source ConfigMaps (read) and the routing ConfigMap (written by server-side apply).
  { apiGroups: [''], resources: ['configmaps'], verbs: [...READ, 'create', 'update', 'patch'] },
  { apiGroups: ['apps'], resources: ['deployments'], verbs: [...READ, 'patch', 'update'] },
  { apiGroups: ['batch'], resources: ['jobs'], verbs: [...READ, 'create', 'patch', 'delete'] },
  { apiGroups: ['batch'], resources: ['cronjobs'], verbs: [...READ, 'create', 'update', 'patch', 'delete'] },
  { apiGroups: ['', 'events.k8s.io'], resources: ['events'], verbs: ['create', 'patch'] },
  { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'create', 'update'] },
];

/** The service in Kubernetes mode: uploads create ModelVersions, promote patches their stage. */
export const serviceRules: PolicyRule[] = [{ apiGroups: [GROUP], resources: [PLURAL], verbs: [...READ, 'create', 'patch'] }];
