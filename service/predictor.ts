import type { ModelRegistry, ServedModel } from './model-registry.ts';
import { rowsFromFeatures, type Prediction } from './onnx-model.ts';
import { cacheKey, SingleFlight, type CacheBackend } from './prediction-cache.ts';

// One prediction from named features: validate, look in the cache, else run the model once even
// for identical concurrent requests, then remember the answer for the TTL.

export type CacheOutcome = 'hit' | 'miss';

export class Predictor {
  private readonly registry: ModelRegistry;
  private readonly cache: CacheBackend;
  private readonly ttlSeconds: number;
  private readonly flights = new SingleFlight<Prediction>();

  constructor(deps: { registry: ModelRegistry; cache: CacheBackend; ttlSeconds: number }) {
    this.registry = deps.registry;
    this.cache = deps.cache;
    this.ttlSeconds = deps.ttlSeconds;
  }

  async predict(served: ServedModel, features: Record<string, number>): Promise<{ result: Prediction; cache: CacheOutcome }> {
    const [row] = rowsFromFeatures(served.model, [features]);
    const key = cacheKey(served.meta.name, served.meta.version, row!);
    const cached = await this.cache.get(key);
    if (cached) return { result: cached, cache: 'hit' };
    const result = await this.flights.run(key, async () => {
      const [prediction] = await this.registry.predict(served, [row!]);
      await this.cache.set(key, prediction!, this.ttlSeconds);
      return prediction!;
    });
    return { result, cache: 'miss' };
  }

  /** Many rows in one ONNX run; not cached (a batch is rarely repeated whole). */
  async predictBatch(served: ServedModel, instances: Array<Record<string, number>>): Promise<Prediction[]> {
    return this.registry.predict(served, rowsFromFeatures(served.model, instances));
  }
}
