import assert from 'node:assert/strict';
import { test } from 'node:test';
import { validatorCompiler as zodValidatorCompiler } from 'fastify-type-provider-zod';
import type { z } from 'zod';
import { compiledCheck, serializerCompiler, validatorCompiler } from './compiled-schemas.ts';
import { BatchPredictionRequest, ModelParams, PredictionRequest, PredictionResponse } from './routes/schemas.ts';

const IRIS = { 'sepal length (cm)': 5.9, 'sepal width (cm)': 3.0, 'petal length (cm)': 5.1, 'petal width (cm)': 1.8 };
const route = (schema: z.ZodType) => ({ schema, method: 'POST', url: '/x', httpPart: 'body' }) as Parameters<typeof validatorCompiler>[0];

test('the compiled check accepts what zod accepts, and then the body is used as it came', () => {
  const validate = validatorCompiler(route(PredictionRequest));
  const body = { features: IRIS, model_id: 'iris' };
  assert.ok(compiledCheck(PredictionRequest)!(body));
  assert.equal((validate(body) as { value: unknown }).value, body, 'no copy');
  assert.deepEqual(PredictionRequest.parse(body), body, 'what zod would have given');
  const batch = { instances: [IRIS, IRIS] };
  assert.equal((validatorCompiler(route(BatchPredictionRequest))(batch) as { value: unknown }).value, batch);
});

test('whatever the compiled check refuses, zod decides: the same answers and messages as zod alone', () => {
  const cases: Array<[z.ZodType, unknown]> = [
    [PredictionRequest, { features: [1, 2] }],
    [PredictionRequest, { features: IRIS, extra: 1 }],
    [PredictionRequest, { features: { ...IRIS, 'petal width (cm)': 'wide' } }],
    [PredictionRequest, { features: IRIS, model_id: 7 }],
    [PredictionRequest, {}],
    [PredictionRequest, null],
    [BatchPredictionRequest, { instances: [] }],
    [BatchPredictionRequest, { instances: [IRIS, 3] }],
    [ModelParams, { model_id: '' }],
    [ModelParams, { model_id: '😀'.repeat(150) }],
  ];
  for (const [schema, data] of cases) {
    const ours = validatorCompiler(route(schema))(data);
    const zods = zodValidatorCompiler(route(schema))(data);
    assert.deepEqual(JSON.parse(JSON.stringify(ours)), JSON.parse(JSON.stringify(zods)), JSON.stringify(data));
  }
});

test('a compiled response schema writes the same JSON as JSON.stringify', () => {
  const write = serializerCompiler({ schema: PredictionResponse });
  for (const answer of [
    {
      prediction: 2,
      confidence: 0.7123,
      probabilities: [0.01, 0.2777, 0.7123],
      timestamp: '2026-01-01T00:00:00.000Z',
      model_version: '1',
      model_id: 'iris',
      prediction_id: 'x',
    },
    { prediction: 1.25e-7, confidence: null, timestamp: 't', model_version: 'v"2', model_id: 'a\\b', prediction_id: 'y' },
    {
      prediction: 0,
      confidence: 0.9,
      label: 'setosa \u2028',
      probabilities: [0.9, 0.1],
      timestamp: 't',
      model_version: '1',
      model_id: 'm',
      prediction_id: 'z',
    },
  ])
    assert.deepEqual(JSON.parse(write(answer)), answer);
});
