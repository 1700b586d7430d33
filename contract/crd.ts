import { z } from 'zod';
import { CATEGORIES, GROUP, IMMUTABLE_FIELDS, KIND, ModelVersionSpec, ModelVersionStatus, PLURAL, SHORT_NAMES, SINGULAR, VERSION } from './model-version.ts';
import { STEPS_RULE } from './rollout.ts';

// The CustomResourceDefinition, generated from the zod schemas: a structural OpenAPI v3 schema
// with descriptions, enums, defaults and CEL rules carrying the schema's own messages, the
// one-source and immutability rules, printer columns, the status subresource and categories.

type Json = { [k: string]: unknown };

interface CelRule {
  rule: string;
  message: string;
  reason?: 'FieldValueInvalid' | 'FieldValueForbidden' | 'FieldValueRequired' | 'FieldValueDuplicate';
}

/** A CEL raw string literal of a JSON Schema pattern (RE2 reads JavaScript's simple classes the same). */
function celString(s: string): string {
  if (s.includes("'")) throw new Error(`pattern ${s} holds a quote; write it without one`);
  return `r'${s}'`;
}

/** zod's JSON Schema → what Kubernetes accepts as a structural schema. */
function structural(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(structural);
  if (!node || typeof node !== 'object') return node;
  const out: Json = {};
  for (const [k, v] of Object.entries(node as Json)) {
    if (k === '$schema' || k === 'id' || k === '$id') continue;
    // Kubernetes rejects additionalProperties:false beside properties; objects are closed by pruning
    // (and kubectl's strict field validation names unknown fields).
    if (k === 'additionalProperties' && v === false) continue;
    if (k === 'propertyNames') continue;
    out[k] = structural(v);
  }
  // A pattern with its schema's message becomes a CEL rule, so the API server's refusal reads like
  // the message ("sha256 must be 64 lowercase hexadecimal characters") instead of a bare regex.
  const message = out['x-validation-message'];
  delete out['x-validation-message'];
  if (typeof message === 'string' && typeof out.pattern === 'string') {
    const rules = (out['x-kubernetes-validations'] as CelRule[] | undefined) ?? [];
    rules.push({ rule: `self.matches(${celString(out.pattern)})`, message });
    delete out.pattern;
    out['x-kubernetes-validations'] = rules;
  }
  // Free-form maps (metadata, signature): kept as they are.
  if (out.type === 'object' && !out.properties) {
    const values = out.additionalProperties as Json | undefined;
    if (!values || Object.keys(values).length === 0) {
      delete out.additionalProperties;
      out['x-kubernetes-preserve-unknown-fields'] = true;
    }
  }
  // zod states integer bounds as ±2^53; Kubernetes' int64 needs none.
  if (out.type === 'integer' && out.minimum === Number.MIN_SAFE_INTEGER) delete out.minimum;
  if (out.type === 'integer' && out.maximum === Number.MAX_SAFE_INTEGER) delete out.maximum;
  return out;
}

function schemaOf(s: z.ZodType, io: 'input' | 'output'): Json {
  return structural(z.toJSONSchema(s, { target: 'openapi-3.0', io, unrepresentable: 'any' })) as Json;
}

/** `self.f == oldSelf.f`, also when f is optional (present on both with the same value, or on neither). */
function unchanged(field: string): string {
  return `has(self.${field}) == has(oldSelf.${field}) && (!has(self.${field}) || self.${field} == oldSelf.${field})`;
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
  // What the import read cannot change under it: a different file is a new version.
  spec['x-kubernetes-validations'] = IMMUTABLE_FIELDS.map((f) => ({
    rule: unchanged(f),
    message: `spec.${f} is immutable once created; apply a new ModelVersion (a new version) instead`,
    reason: 'FieldValueForbidden',
  }));
  const rollout = (spec.properties as Json).rollout as Json;
  rollout['x-kubernetes-validations'] = [
    {
      rule: "self.strategy != 'Canary' || !has(self.steps) || (self.steps.isSorted() && self.steps[size(self.steps) - 1] == 100 && self.steps.all(s, self.steps.filter(t, t == s).size() == 1))",
      message: STEPS_RULE,
    },
  ];
  spec.description = 'A version of a model: where its ONNX file comes from, its stage, its backups and how it rolls out';
  const status = schemaOf(ModelVersionStatus, 'output');
  status.description = 'What the operator observed: phase, conditions (Imported, Serving, Ready), the stored artifact';
  // Conditions merge by type under server-side apply, as metav1.Condition lists do.
  const conditions = (status.properties as Json).conditions as Json;
  conditions['x-kubernetes-list-type'] = 'map';
  conditions['x-kubernetes-list-map-keys'] = ['type'];
  (conditions.items as Json).required = ['type', 'status', 'lastTransitionTime', 'reason', 'message'];
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
            { name: 'Ready', type: 'string', jsonPath: '.status.conditions[?(@.type=="Ready")].status' },
            { name: 'Weight', type: 'integer', jsonPath: '.status.weight', description: "Percent of the model's traffic this version answers" },
            { name: 'Step', type: 'string', jsonPath: '.status.rollout.step', description: 'The step of its canary rollout' },
            { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
            { name: 'Message', type: 'string', jsonPath: '.status.message', priority: 1 },
          ],
          schema: {
            openAPIV3Schema: {
              type: 'object',
              description:
                'ModelVersion: one version of an ONNX model, imported into the model store and served when it is the highest imported Production version of its model',
              required: ['spec'],
              properties: {
                apiVersion: { type: 'string', description: 'serving.analytics.dev/v1alpha1' },
                kind: { type: 'string', description: 'ModelVersion' },
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
