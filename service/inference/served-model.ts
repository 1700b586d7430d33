import { ServiceError, type ProblemDetail } from '../errors.ts';
import type { ServiceMetrics } from '../observability/metrics.ts';
import type { VersionMetadata } from '../store/model-store.ts';
import { DynamicBatcher, type BatchingOptions } from './dynamic-batcher.ts';
import { InferenceError } from './inference-pool.ts';
import type { ModelInterface, Prediction } from './model-interface.ts';
import type { PlainTensor, TensorType } from './tensor.ts';

// One loaded model version, as requests see it: named features in, checked against the model,
// encoded into its input tensors, run (batched with concurrent requests when the model allows it),
// and the output tensors decoded into predictions. It counts its requests in flight, so the
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

export class ServedModel {
  readonly key: string;
  readonly meta: VersionMetadata;
  /** Set when another version took over or this one is deleted: freed once idle. */
  retired = false;
  private readonly model: ModelInterface;
  /** Feature name → column, so checking a row is linear in its size. */
  private readonly columns: Map<string, number>;
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
    this.model = meta.interface;
    this.columns = new Map(this.model.features.map((name, i) => [name, i]));
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
      success: metrics.predictions.labels({ ...labels, outcome: 'success' }),
      error: metrics.predictions.labels({ ...labels, outcome: 'error' }),
    };
  }

  get task(): ModelInterface['task'] {
    return this.model.task;
  }

  get busy(): boolean {
    return this.inflight > 0;
  }

  /** Rows of feature values in the model's column order; one 400 names every problem. */
  rows(instances: Array<Record<string, number>>): number[][] {
    const problems: ProblemDetail[] = [];
    const rows = instances.map((f, i) => this.row(f, problems, instances.length > 1 ? `instance ${i}: ` : ''));
    if (problems.length > 0) {
      throw new ServiceError(
        'FEATURES_INVALID',
        `${problems.map((p) => p.message).join('; ')}. Expected features: ${this.model.features.join(', ')}`,
        problems,
      );
    }
    return rows;
  }

  private row(features: Record<string, number>, problems: ProblemDetail[], where: string): number[] {
    const names = this.model.features;
    const row = new Array<number>(names.length);
    for (let i = 0; i < names.length; i++) {
      const name = names[i]!;
      const v = features[name];
      if (v === undefined) problems.push({ field: name, message: `${where}feature "${name}" is missing` });
      else if (typeof v !== 'number' || !Number.isFinite(v)) problems.push({ field: name, message: `${where}feature "${name}" must be a finite number` });
      else row[i] = v;
    }
    for (const name of Object.keys(features)) {
      if (!this.columns.has(name)) problems.push({ field: name, message: `${where}feature "${name}" is not a feature of this model` });
    }
    return row;
  }

  /** Rows (from rows()) through the model, batched with concurrent requests. */
  async predict(rows: number[][]): Promise<Prediction[]> {
    const outputs = await this.infer(this.encode(rows), Object.values(this.model.outputs));
    return this.decode(outputs, rows.length);
  }

  /** Tensors in, tensors out (the Open Inference Protocol, and predict above). */
  async infer(feeds: Feeds, fetches: string[]): Promise<Outputs> {
    const rows = Object.values(feeds)[0]?.dims[0] ?? 1;
    this.inflight++;
    const started = performance.now();
    try {
      const outputs = await (this.batcher ? this.batcher.submit(feeds, fetches) : this.run(feeds, fetches));
      this.observe.duration.observe((performance.now() - started) / 1000);
      this.observe.success.inc(rows);
      return outputs;
    } catch (err) {
      this.observe.error.inc(rows);
      if (err instanceof InferenceError) throw new ServiceError('INFERENCE_FAILED', `model ${this.key} failed to run: ${err.message}`);
      throw err;
    } finally {
      this.inflight--;
      if (this.retired && this.inflight === 0) this.onIdle(this);
    }
  }

  private encode(rows: number[][]): Feeds {
    const model = this.model;
    const Typed = model.input.dtype === 'float64' ? Float64Array : Float32Array;
    const n = rows.length;
    const width = model.features.length;
    const type: TensorType = model.input.dtype;
    if (model.input.mode === 'tensor') {
      const data = new Typed(n * width);
      for (let r = 0; r < n; r++) data.set(rows[r]!, r * width);
      return { [model.input.name]: { type, dims: [n, width], data } };
    }
    const feeds: Feeds = {};
    model.features.forEach((name, c) => {
      const data = new Typed(n);
      for (let r = 0; r < n; r++) data[r] = rows[r]![c]!;
      feeds[name] = { type, dims: [n, 1], data };
    });
    return feeds;
  }

  private decode(outputs: Outputs, n: number): Prediction[] {
    const model = this.model;
    const result: Prediction[] = [];
    if (model.task === 'regression') {
      const v = outputs[model.outputs.value!]!;
      const width = v.data.length / n;
      for (let r = 0; r < n; r++) result.push({ prediction: Number(v.data[r * width]), confidence: null });
      return result;
    }
    const labels = outputs[model.outputs.label!]!;
    const probs = model.outputs.probabilities ? outputs[model.outputs.probabilities] : undefined;
    const classes = probs ? probs.data.length / n : 0;
    for (let r = 0; r < n; r++) {
      const raw = labels.data[r]!;
      const label = typeof raw === 'bigint' ? Number(raw) : raw;
      const row = probs ? Array.from(probs.data.slice(r * classes, (r + 1) * classes) as ArrayLike<number>, Number) : undefined;
      let index = model.classLabels ? model.classLabels.indexOf(label) : -1;
      if (index < 0 && row) index = row.indexOf(Math.max(...row));
      const confidence = row && index >= 0 ? row[index]! : null;
      if (typeof label === 'string') result.push({ prediction: index, confidence, label, ...(row ? { probabilities: row } : {}) });
      else result.push({ prediction: label, confidence, ...(row ? { probabilities: row } : {}) });
    }
    return result;
  }
}
