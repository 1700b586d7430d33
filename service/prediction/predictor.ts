import { ServiceError } from '../errors.ts';
import type { ServiceMetrics } from '../observability/metrics.ts';
import type { Prediction } from '../inference/model-interface.ts';
import type { ServedModel } from '../inference/served-model.ts';
import { cacheKey, SingleFlight, type CacheBackend } from './cache.ts';
import type { PredictionLog } from './prediction-log.ts';

// One prediction from named features: validate, look in the cache, else run the model once even
// for identical concurrent requests, then remember the answer for the TTL. The cache is fail-open:
// its errors are counted and the model answers instead. Every answer gets a prediction_id that
// feedback can quote later.

export type CacheOutcome = 'hit' | 'miss';

export interface Answer {
  result: Prediction;
  cache: CacheOutcome;
  predictionId: string;
}

export interface Feedback {
  prediction_id: string;
  actual: number | string;
}

export class Predictor {
  private readonly cache: CacheBackend;
  private readonly log: PredictionLog;
  private readonly metrics: ServiceMetrics;
  private readonly ttlSeconds: number;
  private readonly flights = new SingleFlight<{ result: Prediction; cache: CacheOutcome }>();
  private readonly shadowMax: number;
  private shadowInflight = 0;

  constructor(deps: { cache: CacheBackend; log: PredictionLog; metrics: ServiceMetrics; ttlSeconds: number; shadowMaxInflight?: number }) {
    this.cache = deps.cache;
    this.log = deps.log;
    this.metrics = deps.metrics;
    this.ttlSeconds = deps.ttlSeconds;
    this.shadowMax = deps.shadowMaxInflight ?? 64;
  }

  /**
   * A shadow rollout's copy of a request: the shadow version runs the same rows after the stable
   * version answered (never cached, never remembered for feedback, never awaited), and each of its
   * answers is compared with the stable one's: the same label for classifiers, |difference| at most
   * `maxAbsDifference` for regressors. Past SHADOW_MAX_INFLIGHT copies at once it is skipped.
   */
  shadow(shadow: { model: ServedModel; maxAbsDifference: number }, instances: Array<Record<string, number>>, answers: Prediction[]): void {
    const { model } = shadow;
    const labels = { model: model.meta.name, version: model.meta.version };
    if (this.shadowInflight >= this.shadowMax) {
      this.metrics.shadowComparisons.inc({ ...labels, result: 'skipped' }, answers.length);
      return;
    }
    this.shadowInflight++;
    const run = async () => {
      try {
        const got = await model.predictInstances(instances);
        for (const [i, p] of got.entries()) {
          const stable = answers[i]!;
          let agree: boolean;
          if (model.task === 'regression') {
            const difference = Math.abs(p.prediction - stable.prediction);
            this.metrics.shadowDifference.observe(labels, difference);
            agree = difference <= shadow.maxAbsDifference;
          } else agree = (p.label ?? p.prediction) === (stable.label ?? stable.prediction);
          this.metrics.shadowComparisons.inc({ ...labels, result: agree ? 'agree' : 'disagree' });
        }
      } catch {
        this.metrics.shadowComparisons.inc({ ...labels, result: 'error' }, answers.length);
      } finally {
        this.shadowInflight--;
      }
    };
    void run();
  }

  /**
   * An answer from what this process holds (no promise: the hot path), else a promise of one from
   * the cache backend or the model, with `served` held from here to the answer (a swap during the
   * cache lookup cannot free it under the request).
   */
  predict(served: ServedModel, features: Record<string, number>): Answer | Promise<Answer> {
    const { name } = served.meta;
    const row = served.row(features);
    const key = cacheKey(name, served.cacheVersion, row);
    const near = this.cache.peek(key);
    if (near !== undefined) {
      this.metrics.recordCacheLookup(name, 'hit');
      served.answeredFromCache();
      return { result: near, cache: 'hit', predictionId: this.log.remember(served, near) };
    }
    return served.hold(() => this.lookup(served, key, row));
  }

  private async lookup(served: ServedModel, key: string, row: number[]): Promise<Answer> {
    const { name } = served.meta;
    // One flight per key covers the lookup and the run: identical concurrent requests cost one cache
    // read and at most one inference, and a late one cannot miss both the flight and the cache.
    let owner = false;
    const { result, cache } = await this.flights.run(key, async () => {
      owner = true;
      let cached: Prediction | undefined;
      try {
        cached = await this.cache.get(key);
        this.metrics.recordCacheLookup(name, cached ? 'hit' : 'miss');
      } catch {
        this.metrics.recordCacheLookup(name, 'error');
        this.metrics.cacheErrors.inc({ operation: 'get' });
      }
      if (cached) return { result: cached, cache: 'hit' as const };
      const [prediction] = await served.predict([row]);
      this.cache.set(key, prediction!, this.ttlSeconds).catch(() => this.metrics.cacheErrors.inc({ operation: 'set' }));
      return { result: prediction!, cache: 'miss' as const };
    });
    // A request that joined another's flight was answered without running the model: a hit.
    if (!owner) this.metrics.recordCacheLookup(name, 'hit');
    const outcome: CacheOutcome = owner ? cache : 'hit';
    if (outcome === 'hit') served.answeredFromCache();
    return { result, cache: outcome, predictionId: this.log.remember(served, result) };
  }

  /** Many rows in one ONNX run; not cached (a batch is rarely repeated whole). */
  async predictBatch(served: ServedModel, instances: Array<Record<string, number>>): Promise<{ results: Prediction[]; predictionIds: string[] }> {
    const results = await served.predictInstances(instances);
    return { results, predictionIds: this.log.rememberAll(served, results) };
  }

  /** Ground truth for an earlier prediction: accuracy for classifiers, absolute error for regressors. */
  async feedback(fb: Feedback): Promise<{ model: string; version: string; correct?: boolean; absolute_error?: number }> {
    const record = await this.log.take(fb.prediction_id);
    if (!record)
      throw new ServiceError(
        'PREDICTION_NOT_FOUND',
        `no prediction ${fb.prediction_id} is remembered (unknown, already given feedback, or older than the feedback window)`,
      );
    const labels = { model: record.model, version: record.version };
    if (record.task === 'classification') {
      const correct = String(fb.actual) === String(record.predicted);
      this.metrics.feedback.inc({ ...labels, outcome: correct ? 'correct' : 'incorrect' });
      const right = await this.counterValue(labels, 'correct');
      const wrong = await this.counterValue(labels, 'incorrect');
      this.metrics.accuracy.set(labels, right / (right + wrong));
      return { ...labels, correct };
    }
    if (typeof fb.actual !== 'number') {
      this.log.restore(fb.prediction_id, record);
      throw new ServiceError('VALIDATION_FAILED', `model ${record.model} is a regressor: "actual" must be a number`);
    }
    const absoluteError = Math.abs(fb.actual - Number(record.predicted));
    this.metrics.feedback.inc({ ...labels, outcome: 'observed' });
    this.metrics.absoluteError.observe(labels, absoluteError);
    return { ...labels, absolute_error: absoluteError };
  }

  private async counterValue(labels: { model: string; version: string }, outcome: string): Promise<number> {
    const { values } = await this.metrics.feedback.get();
    return values.find((v) => v.labels.model === labels.model && v.labels.version === labels.version && v.labels.outcome === outcome)?.value ?? 0;
  }
}
