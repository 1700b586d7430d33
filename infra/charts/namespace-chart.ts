import { ApiObject, Chart } from 'cdk8s';
import * as kplus from 'cdk8s-plus-27';
import type { Construct } from 'constructs';
import { modelVersionCrd } from '../../contract/crd.ts';
import { NAMESPACE, PART_OF, LABELS } from '../names.ts';

// First to apply: the namespace everything lives in and the ModelVersion CRD (generated from
// the zod schema in contract/model-version.ts), so the objects after it find both.

export interface NamespaceChartProps {
  namespace: string;
}

export class NamespaceChart extends Chart {
  constructor(scope: Construct, id: string, props: NamespaceChartProps = { namespace: NAMESPACE }) {
    // Cluster-scoped objects only: no default namespace.
    super(scope, id, { labels: { [LABELS.partOf]: PART_OF, [LABELS.managedBy]: 'cdk8s' } });
    new kplus.Namespace(this, 'namespace', { metadata: { name: props.namespace } });
    const crd = modelVersionCrd() as { apiVersion: string; kind: string; metadata: { name: string }; spec: unknown };
    new ApiObject(this, 'model-version-crd', crd);
  }
}
