import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

// What the rollout tests roll out and send: the two bad iris versions (generate.py), the sample
// models, and 30 iris rows with their true labels for traffic and ground-truth feedback.

const here = fileURLToPath(new URL('.', import.meta.url));
const models = join(here, '..', '..', 'models');

export const IRIS_FEATURES = ['sepal length (cm)', 'sepal width (cm)', 'petal length (cm)', 'petal width (cm)'];

export type RolloutModel = 'iris-logreg' | 'iris-mlp' | 'iris-fails-on-long-sepals' | 'iris-wrong-labels';

export async function rolloutModelBytes(name: RolloutModel): Promise<Buffer> {
  return readFile(name.startsWith('iris-fails') || name.startsWith('iris-wrong') ? join(here, `${name}.onnx`) : join(models, `${name}.onnx`));
}

export interface TruthRow {
  features: Record<string, number>;
  label: number;
}

export async function irisTruth(): Promise<TruthRow[]> {
  return (JSON.parse(await readFile(join(here, 'iris-truth.json'), 'utf8')) as { rows: TruthRow[] }).rows;
}

/** A fast canary for tests: steps of 2 s, judged after 30 answers. */
export const FAST_CANARY = {
  strategy: 'Canary',
  steps: [20, 50, 100],
  interval: '2s',
  analysis: { minRequests: 30, maxErrorRate: 0.05, minAccuracy: 0.8, minFeedback: 20 },
} as const;

export interface Traffic {
  /** Answers by version. */
  byVersion: Map<string, number>;
  /** Status codes other than 200, by version when known ("?" else). */
  failures: Array<{ status: number; version: string; body: string }>;
  /** Requests sent. */
  sent: number;
  stop(): Promise<void>;
}

/**
 * Bounded load: `clients` loops, each sending one iris row after another (each request with a new
 * canary key, so the split is per request) and, when `feedback`, the true label of each answer.
 */
export function traffic(
  send: (path: string, body: unknown, headers: Record<string, string>) => Promise<{ status: number; body: string }>,
  rows: TruthRow[],
  opts: { model: string; clients?: number; feedback?: boolean; maxRequests?: number },
): Traffic {
  const t: Traffic = { byVersion: new Map(), failures: [], sent: 0, stop: async () => {} };
  let stopped = false;
  const max = opts.maxRequests ?? 200_000;
  const loop = async (c: number) => {
    for (let i = c; !stopped && t.sent < max; i += opts.clients ?? 4) {
      const row = rows[i % rows.length]!;
      t.sent++;
      const res = await send(`/api/v1/predict/${opts.model}`, { features: row.features }, { 'x-canary-key': `client-${c}-${i}` });
      if (res.status !== 200) {
        // A model's failure names it: "model iris@2 gave no usable answer".
        const version = new RegExp(`model ${opts.model}@(\\S+) `).exec(res.body)?.[1] ?? '?';
        t.failures.push({ status: res.status, version, body: res.body.slice(0, 300) });
        continue;
      }
      const answer = JSON.parse(res.body) as { model_version: string; prediction: number; prediction_id: string };
      t.byVersion.set(answer.model_version, (t.byVersion.get(answer.model_version) ?? 0) + 1);
      if (opts.feedback) await send('/api/v1/feedback', { prediction_id: answer.prediction_id, actual: row.label }, {});
    }
  };
  const loops = Array.from({ length: opts.clients ?? 4 }, (_, c) => loop(c));
  t.stop = async () => {
    stopped = true;
    await Promise.all(loops);
  };
  return t;
}
