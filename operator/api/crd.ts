import { z } from 'zod';
import { CATEGORIES, GROUP, KIND, ModelVersionSpec, ModelVersionStatus, PLURAL, SHORT_NAMES, SINGULAR, VERSION } from './model-version.ts';

// The CustomResourceDefinition, generated from the zod schemas: a structural OpenAPI v3 schema
// with descriptions, enums, patterns and defaults, the one-source rule in CEL, printer columns,
// the status subresource and categories.

type Json = { [k: string]: unknown };

/** zod's JSON Schema → what Kubernetes accepts as a structural schema. */
function structural(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(structural);
  if (!node || typeof node !== 'object') return node;
  const out: Json = {};
  for (const [k, v] of Object.entries(node as Json)) {
    if (k === '$schema' || k === 'id' || k === '$id') continue;
    // Kubernetes rejects additionalProperties:false beside properties; objects are closed by pruning.
    if (k === 'additionalProperties' && v === false) continue;
    if (k === 'propertyNames') continue;
    out[k] = structural(v);
  }
  // Free-form maps (metadata, signature): kept as they are.
  if (out.type === 'object' && !out.properties) {
    const values = out.additionalProperties as Json | undefined;
    if (!values || Object.keys(values).length === 0) {
      delete out.additionalProperties;
      out['x-kubernetes-preserve-unknown-fields'] = true;
    }
  }
  return out;
}

function schemaOf(s: z.ZodType, io: 'input' | 'output'): Json {
  return structural(z.toJSONSchema(s, { target: 'openapi-3.0', io, unrepresentable: 'any' })) as Json;
}

export function modelVersionCrd(): Json {
  const spec = schemaOf(ModelVersionSpec, 'input');
  const source = (spec.properties as Json).source as Json;
  source['x-kubernetes-validations'] = [
    {
      rule: '[has(self.storePath), has(self.url), has(self.configMapRef)].filter(x, x).size() == 1',
      message: 'source must name exactly one of storePath, url or configMapRef',
    },
  ];
  spec.description = 'A version of a model: where its ONNX file comes from, its stage and its backups';
  const status = schemaOf(ModelVersionStatus, 'output');
  status.description = 'What the operator observed: phase, conditions (Imported, Serving, Ready), the stored artifact';
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${PLURAL}.${GROUP}` },
    spec: {
      group: GROUP,
      names: { kind: KIND, listKind: `${KIND}List`, plural: PLURAL, singular: SINGULAR, shortNames: SHORT_NAMES, categories: CATEGORIES },
      scope: 'Namespaced',
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: [
            { name: 'Model', type: 'string', jsonPath: '.spec.model' },
            { name: 'Version', type: 'string', jsonPath: '.spec.version' },
            { name: 'Stage', type: 'string', jsonPath: '.spec.stage' },
            { name: 'Phase', type: 'string', jsonPath: '.status.phase' },
            { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
          ],
          schema: {
            openAPIV3Schema: {
              type: 'object',
              description: 'ModelVersion: one version of an ONNX model, imported into the model store and served when it is the newest Production version',
              required: ['spec'],
              properties: {
                apiVersion: { type: 'string' },
                kind: { type: 'string' },
                metadata: { type: 'object' },
                spec,
                status,
              },
            },
          },
        },
      ],
    },
  };
}
