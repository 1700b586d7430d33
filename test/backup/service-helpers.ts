import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../service/app.ts';
import { loadConfig } from '../../service/config.ts';
import { MODELS } from './helpers.ts';

// The real service over a model store, for the backup tests that check a restored store answers
// exactly as before (roundtrip.test.ts, per-model.test.ts). Kept apart from helpers.ts so the tests
// that only run the CLI do not load the service.

export interface Reference {
  features: string[];
  samples: Array<{ features: Record<string, number> }>;
}

/** The names of the sample models in models/ (each an .onnx with a .json of reference samples). */
export async function sampleModels(): Promise<string[]> {
  return (await readdir(MODELS))
    .filter((f) => f.endsWith('.onnx'))
    .map((f) => f.slice(0, -5))
    .sort();
}

export async function start(modelsDir: string): Promise<FastifyInstance> {
  return buildApp({ config: loadConfig({ MODELS_DIR: modelsDir, LOG_LEVEL: 'silent', INFERENCE_THREADS: '1', DOCS: 'false' }) });
}

/** Uploads the sample model `name` as `version` through the API (promoted when asked). */
export async function upload(app: FastifyInstance, name: string, version: string, promote = false): Promise<void> {
  const ref = JSON.parse(await readFile(join(MODELS, `${name}.json`), 'utf8')) as Reference;
  const res = await app.inject({
    method: 'POST',
    url: '/api/v1/models',
    payload: {
      name,
      version,
      model_data: (await readFile(join(MODELS, `${name}.onnx`))).toString('base64'),
      features: ref.features,
      metadata: { source: 'backup test' },
      promote,
    },
  });
  assert.equal(res.statusCode, 201, `upload ${name}@${version}: ${res.body}`);
}

/** Every reference sample of every model through the API, without the per-answer timestamp and id. */
export async function answers(app: FastifyInstance, names: string[]): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  for (const name of names) {
    const ref = JSON.parse(await readFile(join(MODELS, `${name}.json`), 'utf8')) as Reference;
    const described = await app.inject({ method: 'GET', url: `/api/v1/models/${name}` });
    assert.equal(described.statusCode, 200, described.body);
    const { versions, production_version, history } = described.json() as {
      versions: Array<{ version: string; sha256: string }>;
      production_version: string;
      history: unknown[];
    };
    out[`${name} description`] = { production_version, versions: versions.map((v) => `${v.version}:${v.sha256}`), history };
    for (const [i, sample] of ref.samples.entries()) {
      const res = await app.inject({ method: 'POST', url: `/api/v1/predict/${name}`, payload: { features: sample.features } });
      assert.equal(res.statusCode, 200, `${name} sample ${i}: ${res.body}`);
      const { timestamp: _t, prediction_id: _id, ...answer } = res.json() as Record<string, unknown>;
      out[`${name} #${i}`] = answer;
    }
  }
  return out;
}
