import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { buildApp, type BuildOptions } from '../../service/app.ts';
import { loadConfig } from '../../service/config.ts';

// Builds the real service on a temporary model store, as tests need it.

export const MODELS = new URL('../../models/', import.meta.url).pathname;

export interface Reference {
  name: string;
  task: 'classification' | 'regression';
  features: string[];
  input: { mode: 'tensor' | 'per_feature'; dtype: 'float32' | 'float64' };
  classes?: Array<number | string>;
  samples: Array<{
    features: Record<string, number>;
    sklearn: { label?: number | string; probabilities?: number[]; value?: number };
    onnxruntime: { label?: number | string; probabilities?: number[]; value?: number };
  }>;
}

export const SAMPLE_MODELS = [
  'iris-logreg',
  'iris-species',
  'wine-forest',
  'breast-cancer-gbc',
  'breast-cancer-pipeline',
  'diabetes-linear',
  'diabetes-forest',
  'diabetes-gbr',
  'iris-mlp',
  'iris-per-feature',
  'digits-forest-large',
] as const;

export async function reference(name: string): Promise<Reference> {
  return JSON.parse(await readFile(join(MODELS, `${name}.json`), 'utf8')) as Reference;
}

export async function modelBytes(name: string): Promise<Buffer> {
  return readFile(join(MODELS, `${name}.onnx`));
}

export interface TestService {
  app: FastifyInstance;
  modelsDir: string;
  close(): Promise<void>;
}

export async function startService(env: Record<string, string> = {}, options: Partial<BuildOptions> = {}): Promise<TestService> {
  const modelsDir = env.MODELS_DIR ?? (await mkdtemp(join(tmpdir(), 'analytics-models-')));
  const config = loadConfig({ LOG_LEVEL: 'silent', INFERENCE_THREADS: '2', DOCS: 'true', ...env, MODELS_DIR: modelsDir });
  const app = await buildApp({ config, ...options });
  return {
    app,
    modelsDir,
    async close() {
      await app.close();
      if (!env.MODELS_DIR) await rm(modelsDir, { recursive: true, force: true });
    },
  };
}

/** Uploads models/<name>.onnx as JSON with base64 model_data and the reference's feature names. */
export async function uploadSample(
  app: FastifyInstance,
  name: string,
  version = '1',
  extra: Record<string, unknown> = {},
  as = name,
  headers: Record<string, string> = {},
) {
  const ref = await reference(name);
  return app.inject({
    method: 'POST',
    url: '/api/v1/models',
    headers,
    payload: { name: as, version, metadata: { dataset: name }, model_data: (await modelBytes(name)).toString('base64'), features: ref.features, ...extra },
  });
}

export function closeTo(actual: number, expected: number, rel: number, abs = 0): boolean {
  return Math.abs(actual - expected) <= rel * Math.max(Math.abs(actual), Math.abs(expected)) + abs;
}
