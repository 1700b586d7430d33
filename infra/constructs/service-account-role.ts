import * as kplus from 'cdk8s-plus-27';
import { Construct } from 'constructs';
import type { PolicyRule } from '../../contract/rbac.ts';

// A ServiceAccount bound to a Role whose rules are data from operator/rbac.ts, rendered as they
// are (the same rules the RBAC tests check by impersonation), never retyped here.

export interface ServiceAccountRoleProps {
  /** Name of the ServiceAccount, the Role and the RoleBinding. */
  name: string;
  namespace: string;
  labels: Record<string, string>;
  rules: readonly PolicyRule[];
}

export class ServiceAccountRole extends Construct {
  readonly serviceAccount: kplus.ServiceAccount;

  constructor(scope: Construct, id: string, props: ServiceAccountRoleProps) {
    super(scope, id);
    const metadata = { name: props.name, namespace: props.namespace, labels: props.labels };
    // The token is mounted by the pods that need it (automountServiceAccountToken on the pod).
    this.serviceAccount = new kplus.ServiceAccount(this, 'account', { metadata, automountToken: false });
    new kplus.k8s.KubeRole(this, 'role', {
      metadata,
      rules: props.rules.map((r) => ({
        apiGroups: [...r.apiGroups],
        resources: [...r.resources],
        verbs: [...r.verbs],
        ...(r.resourceNames ? { resourceNames: [...r.resourceNames] } : {}),
      })),
    });
    new kplus.k8s.KubeRoleBinding(this, 'binding', {
      metadata,
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: props.name },
      subjects: [{ kind: 'ServiceAccount', name: props.name, namespace: props.namespace }],
    });
  }
}
