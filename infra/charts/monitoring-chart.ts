import { ApiObject, Chart } from 'cdk8s';
import * as kplus from 'cdk8s-plus-27';
import type { Construct } from 'constructs';
import { alertGroups } from '../monitoring/alerts.ts';
import { DASHBOARD_UID, dashboard } from '../monitoring/dashboard.ts';
import { NAMESPACE, OPERATOR_NAME, SERVICE_NAME, labelsFor, selectorFor } from '../names.ts';

// For the Prometheus operator (kube-prometheus-stack): ServiceMonitors for the service and the
// operator, the PrometheusRule with the specification's thresholds, and the Grafana dashboard as
// a ConfigMap for Grafana's sidecar. Applied only where the monitoring.coreos.com CRDs exist.

export interface MonitoringChartProps {
  namespace?: string;
  /** Scrape interval. */
  interval?: string;
}

const MONITORING = 'monitoring.coreos.com/v1';

export class MonitoringChart extends Chart {
  constructor(scope: Construct, id: string, props: MonitoringChartProps = {}) {
    const namespace = props.namespace ?? NAMESPACE;
    super(scope, id, { namespace });
    const labels = labelsFor(SERVICE_NAME, 'monitoring');
    const interval = props.interval ?? '15s';

    const serviceMonitor = (id: string, name: string, selectName: string, port: string) =>
      new ApiObject(this, id, {
        apiVersion: MONITORING,
        kind: 'ServiceMonitor',
        metadata: { name, labels },
        spec: {
          selector: { matchLabels: selectorFor(selectName) },
          namespaceSelector: { matchNames: [namespace] },
          endpoints: [{ port, path: '/metrics', interval }],
        },
      });
    serviceMonitor('service-monitor', SERVICE_NAME, SERVICE_NAME, 'http');
    serviceMonitor('operator-monitor', OPERATOR_NAME, OPERATOR_NAME, 'metrics');

    new ApiObject(this, 'rules', {
      apiVersion: MONITORING,
      kind: 'PrometheusRule',
      metadata: { name: SERVICE_NAME, labels },
      spec: { groups: alertGroups },
    });

    new kplus.ConfigMap(this, 'dashboard', {
      metadata: {
        name: `${SERVICE_NAME}-dashboard`,
        // The label Grafana's dashboard sidecar looks for; the annotation names its folder.
        labels: { ...labels, grafana_dashboard: '1' },
        annotations: { grafana_folder: 'Analytics' },
      },
      data: { [`${DASHBOARD_UID}.json`]: JSON.stringify(dashboard(), null, 2) },
    });
  }
}
