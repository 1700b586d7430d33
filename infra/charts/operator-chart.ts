import { Chart, Duration } from 'cdk8s';
import * as kplus from 'cdk8s-plus-27';
import type { Construct } from 'constructs';
import { operatorRules } from '../../contract/rbac.ts';
import { HardenedDeployment, type Resources } from '../constructs/hardened-deployment.ts';
import { ServiceAccountRole } from '../constructs/service-account-role.ts';
import { IMAGE_GID, IMAGE_REF, IMAGE_UID, NAMESPACE, OPERATOR_METRICS_PORT, OPERATOR_NAME, labelsFor, selectorFor } from '../names.ts';

// The operator: watches ModelVersions, imports artifacts, writes the routing ConfigMap, rolls the
// service and keeps the backup CronJobs. Same image as the service; two replicas behind a Lease
// (leader election), so a standby takes over when the leader's pod goes.

export interface OperatorChartProps {
  namespace?: string;
  image?: string;
  replicas?: number;
  resources?: Resources;
}

export class OperatorChart extends Chart {
  readonly deployment: HardenedDeployment;

  constructor(scope: Construct, id: string, props: OperatorChartProps = {}) {
    const namespace = props.namespace ?? NAMESPACE;
    super(scope, id, { namespace });
    const labels = labelsFor(OPERATOR_NAME, 'operator');
    const rbac = new ServiceAccountRole(this, 'rbac', { name: OPERATOR_NAME, namespace, labels, rules: operatorRules });
    const port = OPERATOR_METRICS_PORT;

    this.deployment = new HardenedDeployment(this, 'deployment', {
      name: OPERATOR_NAME,
      component: 'operator',
      replicas: props.replicas ?? 2,
      image: props.image ?? IMAGE_REF,
      command: ['node', 'operator/main.ts'],
      port: { name: 'metrics', number: port },
      env: {
        NAMESPACE: kplus.EnvValue.fromFieldRef(kplus.EnvFieldPaths.POD_NAMESPACE),
        // The replica's identity in the leader-election Lease.
        POD_NAME: kplus.EnvValue.fromFieldRef(kplus.EnvFieldPaths.POD_NAME),
        METRICS_PORT: kplus.EnvValue.fromValue(String(port)),
      },
      resources: props.resources ?? {
        requests: { cpu: '100m', memory: '128Mi' },
        limits: { cpu: '500m', memory: '512Mi' },
      },
      liveness: kplus.Probe.fromHttpGet('/healthz', { port, periodSeconds: Duration.seconds(10), initialDelaySeconds: Duration.seconds(5) }),
      readiness: kplus.Probe.fromHttpGet('/readyz', { port, periodSeconds: Duration.seconds(5) }),
      serviceAccount: rbac.serviceAccount,
      runAs: { user: IMAGE_UID, group: IMAGE_GID },
      // Time to release the Lease, so the standby takes over at once.
      terminationGracePeriod: Duration.seconds(30),
    });

    // For the ServiceMonitor: controller_runtime_* and workqueue_* metrics of every replica.
    new kplus.Service(this, 'metrics', {
      metadata: { name: `${OPERATOR_NAME}-metrics`, labels },
      ports: [{ name: 'metrics', port, targetPort: port }],
    }).selectLabel(Object.keys(selectorFor(OPERATOR_NAME))[0], OPERATOR_NAME);
  }
}
