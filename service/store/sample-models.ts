import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { FastifyBaseLogger } from 'fastify';
import type { ModelRegistry } from '../serving/model-registry.ts';
import type { ModelStore } from './model-store.ts';

// `make run` starts with the sample models served: each models/<name>.onnx with its reference
// models/<name>.json (for the feature names) is uploaded as version 1 when the store lacks it.
export async function importSampleModels(dir: string, store: ModelStore, registry: ModelRegistry, log: FastifyBaseLogger): Promise<string[]> {
  const imported: string[] = [];
  const files = (await readdir(dir).catch(() => [] as string[])).filter((f) => f.endsWith('.onnx')).sort();
  for (const file of files) {
    const name = file.slice(0, -'.onnx'.length);
    if ((await store.listVersions(name)).length > 0) continue;
    const reference = JSON.parse(await readFile(join(dir, `${name}.json`), 'utf8').catch(() => '{}')) as {
      features?: string[];
      task?: string;
      dataset?: string;
      estimator?: string;
    };
    await registry.upload({
      name,
      version: '1',
      bytes: await readFile(join(dir, file)),
      source: join(dir, file),
      ...(reference.features ? { features: reference.features } : {}),
      metadata: { source: 'sample', dataset: reference.dataset, estimator: reference.estimator, task: reference.task },
      promote: true,
    });
    imported.push(name);
    log.info({ model: name }, 'sample model imported');
  }
  return imported;
}
