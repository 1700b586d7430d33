import { listSome, ServiceError, type ProblemDetail } from '../errors.ts';
import type { ServiceMetrics } from '../observability/metrics.ts';
import type { VersionMetadata } from '../store/model-store.ts';
import { DynamicBatcher, groupKey, type BatchingOptions } from './dynamic-batcher.ts';
import { InferenceError } from './inference-pool.ts';
import { decodeOutputs, encodeRows, OutputError, type ModelInterface, type Prediction } from './model-interface.ts';
import type { PlainTensor } from './tensor.ts';

// One loaded model version, as requests see it: named features in, checked against the model,
// encoded into its input tensors, run (batched with concurrent requests when the model allows it),
// and the output tensors decoded into predictions. It counts the requests holding it, so the
// registry frees it only once the last one is done.

type Feeds = Record<string, PlainTensor>;
type Outputs = Record<string, PlainTensor>;
export type Run = (feeds: Feeds, fetches: string[]) => Promise<Outputs>;

/** Batching for a version: the defaults, overridden by its metadata `batching` ({max_batch_size, max_queue_delay_ms} or false). */
function batchingFor(meta: VersionMetadata, defaults: BatchingOptions): BatchingOptions | undefined {
  const dynamic = (shape: Array<number | string> | undefined) =>
    shape !== undefined && shape.length > 0 && (typeof shape[0] === 'string' || (shape[0] as number) < 0);
  if (![...meta.signature.inputs, ...meta.signature.outputs].every((v) => dynamic(v.shape) || (v.shape?.length ?? 0) === 0)) return undefined;
  if (!meta.signature.inputs.every((v) => dynamic(v.shape))) return undefined;
  const own = meta.metadata.batching;
  if (own === false) return undefined;
  const o = (own && typeof own === 'object' ? own : {}) as { max_batch_size?: unknown; max_queue_delay_ms?: unknown };
  const size = Number.isInteger(o.max_batch_size) && (o.max_batch_size as number) > 0 ? (o.max_batch_size as number) : defaults.maxBatchSize;
  const delay = typeof o.max_queue_delay_ms === 'number' && o.max_queue_delay_ms >= 0 ? o.max_queue_delay_ms : defaults.maxQueueDelayMs;
  return size > 1 ? { maxBatchSize: size, maxQueueDelayMs: delay } : undefined;
}

/** The largest float32: a value beyond it would reach the model as Infinity. */
const FLOAT32_MAX = 3.4028234663852886e38;
/** Problems named in one answer, at most. */
const MAX_PROBLEMS = 20;

export class ServedModel {
  readonly key: string;
  readonly meta: VersionMetadata;
  /** Set when another version took over or this one is deleted: freed once idle. */
  retired = false;
  /** Its session was freed in the pool. */
  unloaded = false;
  /** The version in cache keys, with its bytes' sha256: answers of other bytes under the same version never mix. */
  readonly cacheVersion: string;
  private readonly model: ModelInterface;
  /** Feature name → column, so checking a row is linear in its size. */
  private readonly columns: Map<string, number>;
  private readonly float32: boolean;
  /** The largest magnitude a value may have: float32's for a float input, else any finite double. */
  private readonly maxMagnitude: number;
  /** The outputs predictions read, fetched in every run. */
  private readonly fetches: string[];
  /** The batcher's group of this model's own feeds (from predict), worked out once. */
  private readonly groupKey: string;
  private readonly run: Run;
  /** Coalesces concurrent requests into one run; absent when the model has no dynamic batch dimension. */
  private readonly batcher: DynamicBatcher | undefined;
  private readonly onIdle: (served: ServedModel) => void;
  private readonly observe: { duration: { observe(v: number): void }; success: { inc(n: number): void }; error: { inc(n: number): void } };
  private inflight = 0;

  constructor(options: {
    key: string;
    meta: VersionMetadata;
    run: Run;
    batching: BatchingOptions;
    metrics: ServiceMetrics;
    onIdle: (served: ServedModel) => void;
  }) {
    const { key, meta, metrics } = options;
    this.key = key;
    this.meta = meta;
    this.cacheVersion = `${meta.version}~${meta.sha256.slice(0, 12)}`;
    this.model = meta.interface;
    this.columns = new Map(this.model.features.map((name, i) => [name, i]));
    this.float32 = this.model.input.dtype === 'float32';
    this.maxMagnitude = this.float32 ? FLOAT32_MAX : Number.MAX_VALUE;
    this.fetches = Object.values(this.model.outputs);
    this.groupKey = groupKey(encodeRows(this.model, [new Array<number>(this.model.features.length).fill(0)]), this.fetches);
    const labels = { model: meta.name, version: meta.version };
    const batchSize = metrics.batchSize.labels(labels);
    this.run = (feeds, fetches) => {
      batchSize.observe(Object.values(feeds)[0]?.dims[0] ?? 0);
      return options.run(feeds, fetches);
    };
    const batching = batchingFor(meta, options.batching);
    this.batcher = batching && new DynamicBatcher(this.run, batching);
    this.onIdle = options.onIdle;
    this.observe = {
      duration: metrics.inferenceDuration.labels(labels),
      success: metrics.predictions.hotChild({ ...labels, outcome: 'success' }),
      error: metrics.predictions.hotChild({ ...labels, outcome: 'error' }),
    };
  }

  get task(): ModelInterface['task'] {
    return this.model.task;
  }

  get busy(): boolean {
    return this.inflight > 0;
  }

  /**
   * One row of feature values in the model's column order, checked without allocating more than
   * the row when it is right (the hot path); anything wrong goes to rows() for its 400.
   */
  row(features: Record<string, number>): number[] {
    const names = this.model.features;
    const row = new Array<number>(names.length);
    for (let i = 0; i < names.length; i++) {
      const v = features[names[i]!];
      // A number is an own property: nothing on Object.prototype is one. NaN and ±Infinity fail the comparison.
      if (typeof v !== 'number' || !(Math.abs(v) <= this.maxMagnitude)) return this.rows([features])[0]!;
      row[i] = v;
    }
    if (!this.exactly(features, names.length)) return this.rows([features])[0]!;
    return row;
  }

  /** Whether `features`, whose every model feature is present, holds nothing else. */
  private exactly(features: Record<string, number>, count: number): boolean {
    let n = 0;
    for (const _ in features) n++;
    return n === count;
  }

  /** Rows of feature values in the model's column order; one 400 names the problems (the first 20, and how many more). */
  rows(instances: Array<Record<string, number>>): number[][] {
    const problems = { shown: [] as ProblemDetail[], count: 0 };
    const rows = instances.map((f, i) => this.checked(f, problems, instances.length > 1 ? `instance ${i}: ` : ''));
    if (problems.count > 0) {
      const more = problems.count > MAX_PROBLEMS ? `; and ${(problems.count - MAX_PROBLEMS).toLocaleString('en-US')} more` : '';
      throw new ServiceError(
        'FEATURES_INVALID',
        `${problems.shown.map((p) => p.message).join('; ')}${more}. Expected features: ${listSome(this.model.features, 20)}`,
        problems.shown,
      );
    }
    return rows;
  }

  private checked(features: Record<string, number>, problems: { shown: ProblemDetail[]; count: number }, where: string): number[] {
    const problem = (field: string, message: () => string) => {
      if (problems.count++ < MAX_PROBLEMS) problems.shown.push({ field, message: message() });
    };
    const names = this.model.features;
    const row = new Array<number>(names.length);
    for (let i = 0; i < names.length; i++) {
      const name = names[i]!;
      const v = Object.hasOwn(features, name) ? features[name] : undefined;
      if (v === undefined) problem(name, () => `${where}feature "${name}" is missing`);
      else if (typeof v !== 'number' || !Number.isFinite(v)) problem(name, () => `${where}feature "${name}" must be a finite number`);
      else if (this.float32 && Math.abs(v) > FLOAT32_MAX)
        problem(name, () => `${where}feature "${name}" is ${v}, beyond what the model's float32 input holds (±3.4e38)`);
      else row[i] = v;
    }
    for (const name in features) {
      if (!this.columns.has(name)) problem(name, () => `${where}feature "${name}" is not a feature of this model`);
    }
    return row;
  }

  /** Rows (from row() or rows()) through the model, batched with concurrent requests. */
  async predict(rows: number[][]): Promise<Prediction[]> {
    return this.decode(await this.execute(encodeRows(this.model, rows), this.fetches, rows.length, this.groupKey), rows.length);
  }

  /**
   * Named rows (a REST batch) through the model: checked and written straight into the input
   * tensor, with no row arrays between (rows() builds the 400 when anything is wrong).
   */
  async predictInstances(instances: Array<Record<string, number>>): Promise<Prediction[]> {
    return this.decode(await this.execute(this.encodeInstances(instances), this.fetches, instances.length, this.groupKey), instances.length);
  }

  private encodeInstances(instances: Array<Record<string, number>>): Record<string, PlainTensor> {
    const { input } = this.model;
    if (input.mode !== 'tensor') return encodeRows(this.model, this.rows(instances));
    const names = this.model.features;
    const width = names.length;
    const data = this.float32 ? new Float32Array(instances.length * width) : new Float64Array(instances.length * width);
    for (let r = 0, at = 0; r < instances.length; r++) {
      const features = instances[r]!;
      for (let i = 0; i < width; i++, at++) {
        const v = features[names[i]!];
        if (typeof v !== 'number' || !(Math.abs(v) <= this.maxMagnitude)) return encodeRows(this.model, this.rows(instances));
        data[at] = v;
      }
      if (!this.exactly(features, width)) return encodeRows(this.model, this.rows(instances));
    }
    return { [input.name]: { type: input.dtype, dims: [instances.length, width], data } };
  }

  /** Output tensors to predictions; an answer that breaks the shape is an error of this version. */
  private decode(outputs: Outputs, n: number): Prediction[] {
    try {
      const predictions = decodeOutputs(this.model, outputs, n);
      this.observe.success.inc(n);
      return predictions;
    } catch (err) {
      // Never a 200 that breaks the answer's shape (and never cached).
      this.observe.error.inc(n);
      if (err instanceof OutputError)
        throw new ServiceError('INFERENCE_FAILED', `model ${this.meta.name}@${this.meta.version} gave no usable answer: ${err.message}`);
      throw err;
    }
  }

  /** An answer of this version from the cache: counted with the ones it ran (a rollout's error rate is over every answer). */
  answeredFromCache(rows = 1): void {
    this.observe.success.inc(rows);
  }

  /**
   * Runs `fn` with this version held: a retired version is freed only once nothing holds it. A
   * request holds it from choosing it to its answer (a cache lookup comes between, a Redis round
   * trip during which a swap may retire it), not only while it runs.
   */
  async hold<T>(fn: () => Promise<T>): Promise<T> {
    this.inflight++;
    try {
      return await fn();
    } finally {
      this.inflight--;
      if (this.retired && this.inflight === 0) this.onIdle(this);
    }
  }

  /** Tensors in, tensors out (the Open Inference Protocol); `group`: the batcher's key when known. */
  async infer(feeds: Feeds, fetches: string[], group?: string): Promise<Outputs> {
    const rows = Object.values(feeds)[0]?.dims[0] ?? 1;
    const outputs = await this.execute(feeds, fetches, rows, group);
    this.observe.success.inc(rows);
    return outputs;
  }

  /** One run, held, batched with concurrent ones, timed; a failed run counts its rows as errors. */
  private execute(feeds: Feeds, fetches: string[], rows: number, group?: string): Promise<Outputs> {
    return this.hold(async () => {
      const started = performance.now();
      try {
        const outputs = await (this.batcher ? this.batcher.submit(feeds, fetches, group) : this.run(feeds, fetches));
        this.observe.duration.observe((performance.now() - started) / 1000);
        return outputs;
      } catch (err) {
        this.observe.error.inc(rows);
        if (err instanceof InferenceError)
          throw new ServiceError('INFERENCE_FAILED', `model ${this.meta.name}@${this.meta.version} failed to run: ${err.message}`);
        throw err;
      }
    });
  }
}
