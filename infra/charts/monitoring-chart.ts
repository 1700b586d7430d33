import { ApiObject, Chart } from 'cdk8s';
import * as kplus from 'cdk8s-plus-27';
import type { Construct } from 'constructs';
import { alertGroups } from '../monitoring/alerts.ts';
import { dashboard, dashboardUid } from '../monitoring/dashboard.ts';
import { NAMESPACE, OPERATOR_NAME, SERVICE_NAME, labelsFor, selectorFor } from '../names.ts';

// For the Prometheus operator (kube-prometheus-stack): ServiceMonitors for the service and the
// operator, the PrometheusRule with the specification's thresholds, and the Grafana dashboard as
// a ConfigMap for Grafana's sidecar. Applied only where the monitoring.coreos.com CRDs exist.

export interface MonitoringChartProps {
  namespace?: string;
  /** Scrape interval. */
  interval?: string;
  /** Where docs/runbooks.md is served (each alert's runbook_url). */
  runbookBaseUrl?: string;
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
      spec: { groups: alertGroups({ namespace, runbookBaseUrl: props.runbookBaseUrl ?? 'docs/runbooks.md' }) },
    });

    new kplus.ConfigMap(this, 'dashboard', {
      metadata: {
        name: `${SERVICE_NAME}-dashboard`,
        // The label kube-prometheus-stack's Grafana sidecar looks for (label grafana_dashboard,
        // labelValue "1"); the folder annotation counts only where the sidecar is told its key
        // (sidecar.dashboards.folderAnnotation: grafana_folder, docs/monitoring.md).
        labels: { ...labels, grafana_dashboard: '1' },
        annotations: { grafana_folder: 'Analytics' },
      },
      data: { [`${dashboardUid(namespace)}.json`]: JSON.stringify(dashboard({ namespace }), null, 2) },
    });
  }
}
