import { readFile } from 'node:fs/promises';
import type { FastifyBaseLogger } from 'fastify';
import { Routing } from '../../contract/routing.ts';
import type { ModelRegistry } from '../serving/model-registry.ts';
import type { VersionMetadata } from '../store/model-store.ts';

// The service under the operator (CONTROL_PLANE=kubernetes): ModelVersion resources decide what
// serves. The service loads what the routing file (the operator's ConfigMap, mounted) names and
// follows its changes; an upload stores the artifact and creates a ModelVersion; promote asks
// for the Production stage (model-versions.ts).

async function readRouting(path: string): Promise<Map<string, string>> {
  const parsed = Routing.parse(JSON.parse(await readFile(path, 'utf8')));
  return new Map(Object.entries(parsed.models).map(([model, r]) => [model, r.version]));
}

/** The Kubernetes side of uploads and promotes (an implementation talks to the API server). */
export interface ModelVersionApi {
  create(meta: VersionMetadata, stage: 'Production' | 'Staging'): Promise<void>;
  setStage(model: string, version: string, stage: 'Production' | 'Staging' | 'Archived'): Promise<void>;
}

/** Applies the routing file now and whenever its content changes (kubelet swaps mounted ConfigMaps in place). */
export async function followRouting(path: string, registry: ModelRegistry, log: FastifyBaseLogger, pollMs = 2000): Promise<{ stop(): void }> {
  let last = '';
  const apply = async () => {
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (err) {
      if (last !== 'missing') log.warn({ path, err: (err as Error).message }, 'routing file not readable; serving nothing until it is');
      last = 'missing';
      return;
    }
    if (text === last) return;
    try {
      const routing = await readRouting(path);
      await registry.applyRouting(routing);
      last = text;
    } catch (err) {
      log.error({ path, err: (err as Error).message }, 'routing file is not valid; keeping the current routing');
      last = text;
    }
  };
  await apply();
  let running = false;
  const timer = setInterval(() => {
    if (running) return;
    running = true;
    void apply().finally(() => {
      running = false;
    });
  }, pollMs);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
