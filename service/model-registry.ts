import type { FastifyBaseLogger } from 'fastify';
import { DynamicBatcher, type BatchingOptions } from './dynamic-batcher.ts';
import { ServiceError } from './errors.ts';
import { InferenceError, type InferencePool } from './inference-pool.ts';
import type { ServiceMetrics } from './metrics.ts';
import { inspectGraph, OnnxFormatError, withoutZipMap } from './onnx-graph.ts';
import { decodeOutputs, describeModel, encodeRows, fetchesOf, type ModelInterface, type Prediction } from './onnx-model.ts';
import { MODEL_NAME, VERSION_NAME, sha256, type HistoryEvent, type ModelStore, type VersionMetadata } from './model-store.ts';
import type { PlainTensor } from './tensor.ts';

// Which versions are loaded and which one serves each model. Promote loads the new version into
// every worker, flips the pointer, then frees the old one once its in-flight requests are done:
// no request fails across a swap.

export interface ServedModel {
  key: string;
  meta: VersionMetadata;
  model: ModelInterface;
  /** Coalesces concurrent requests into one run; absent when the model has no dynamic batch dimension. */
  batcher: DynamicBatcher | undefined;
  inflight: number;
  retired: boolean;
}

/** Batching for a version: the defaults, overridden by its metadata `batching` ({max_batch_size, max_queue_delay_ms} or false). */
export function batchingFor(meta: VersionMetadata, defaults: BatchingOptions): BatchingOptions | undefined {
  const dynamic = (shape: Array<number | string> | undefined) => shape !== undefined && shape.length > 0 && (typeof shape[0] === 'string' || (shape[0] as number) < 0);
  if (![...meta.signature.inputs, ...meta.signature.outputs].every((v) => dynamic(v.shape) || (v.shape?.length ?? 0) === 0)) return undefined;
  if (!meta.signature.inputs.every((v) => dynamic(v.shape))) return undefined;
  const own = meta.metadata.batching;
  if (own === false) return undefined;
  const o = (own && typeof own === 'object' ? own : {}) as { max_batch_size?: unknown; max_queue_delay_ms?: unknown };
  const size = Number.isInteger(o.max_batch_size) && (o.max_batch_size as number) > 0 ? (o.max_batch_size as number) : defaults.maxBatchSize;
  const delay = typeof o.max_queue_delay_ms === 'number' && o.max_queue_delay_ms >= 0 ? o.max_queue_delay_ms : defaults.maxQueueDelayMs;
  return size > 1 ? { maxBatchSize: size, maxQueueDelayMs: delay } : undefined;
}

export interface UploadInput {
  name: string;
  version: string;
  bytes: Uint8Array;
  features?: string[];
  metadata?: Record<string, unknown>;
  promote?: boolean;
}

export interface ModelDescription {
  name: string;
  production_version: string | null;
  versions: Array<VersionMetadata & { production: boolean; loaded: boolean }>;
  history: HistoryEvent[];
}

const keyOf = (name: string, version: string) => `${name}@${version}`;

export class ModelRegistry {
  private readonly store: ModelStore;
  private readonly pool: InferencePool;
  private readonly metrics: ServiceMetrics;
  private readonly log: FastifyBaseLogger;
  private readonly production = new Map<string, string>();
  private readonly served = new Map<string, ServedModel>();
  private readonly loading = new Map<string, Promise<ServedModel>>();
  private readonly loadErrors = new Map<string, string>();
  /** Called after a model's serving version changes or a version goes, to purge cached answers. */
  onModelChanged: (name: string) => Promise<void> = async () => {};

  private readonly batching: BatchingOptions;

  constructor(deps: { store: ModelStore; pool: InferencePool; metrics: ServiceMetrics; log: FastifyBaseLogger; batching: BatchingOptions }) {
    this.batching = deps.batching;
    this.store = deps.store;
    this.pool = deps.pool;
    this.metrics = deps.metrics;
    this.log = deps.log;
  }

  /**
   * Who decides which version serves: the store's history (standalone, where promote is a REST
   * call), or the operator's routing (Kubernetes, applied with applyRouting).
   */
  routingFromOperator = false;

  /** Loads every model's production version. Failures are logged and reported by /ready. */
  async start(): Promise<void> {
    if (this.routingFromOperator) return;
    for (const name of await this.store.listModels()) {
      const version = await this.store.productionVersion(name);
      if (!version) continue;
      this.production.set(name, version);
      await this.loadProduction(name, version);
    }
  }

  private async loadProduction(name: string, version: string): Promise<ServedModel | undefined> {
    return this.ensureLoaded(name, version).catch((err: Error) => {
      this.loadErrors.set(name, err.message);
      this.log.error({ model: name, version, err: err.message }, 'production model failed to load');
      return undefined;
    });
  }

  /**
   * Serves exactly the routed versions (Kubernetes mode: the operator's routing file). Each new
   * version is loaded before it takes over, then the old one is freed; models no longer routed stop serving.
   */
  async applyRouting(routing: Map<string, string>): Promise<void> {
    for (const [name, version] of routing) {
      if (this.production.get(name) === version && this.served.has(keyOf(name, version))) continue;
      const incoming = await this.loadProduction(name, version);
      const previous = this.production.get(name);
      this.production.set(name, version);
      if (!incoming) continue;
      const old = previous !== undefined && previous !== version ? this.served.get(keyOf(name, previous)) : undefined;
      if (old) this.retire(old);
      await this.onModelChanged(name);
      this.log.info({ model: name, version, previous }, 'routing applied');
    }
    for (const [name, version] of [...this.production]) {
      if (routing.has(name)) continue;
      this.production.delete(name);
      const old = this.served.get(keyOf(name, version));
      if (old) this.retire(old);
      await this.onModelChanged(name);
    }
  }

  /** Production models, each with its version and whether it is loaded. */
  status(): Array<{ name: string; version: string; loaded: boolean; error?: string }> {
    return [...this.production].map(([name, version]) => ({
      name,
      version,
      loaded: this.served.has(keyOf(name, version)),
      ...(this.loadErrors.has(name) ? { error: this.loadErrors.get(name)! } : {}),
    }));
  }

  ready(): boolean {
    return this.status().every((m) => m.loaded);
  }

  private async ensureLoaded(name: string, version: string): Promise<ServedModel> {
    const key = keyOf(name, version);
    const current = this.served.get(key);
    if (current) {
      current.retired = false;
      return current;
    }
    let pending = this.loading.get(key);
    if (!pending) {
      pending = this.load(name, version).finally(() => this.loading.delete(key));
      this.loading.set(key, pending);
    }
    return pending;
  }

  private async load(name: string, version: string): Promise<ServedModel> {
    const meta = await this.store.readMetadata(name, version);
    if (!meta) throw new ServiceError('VERSION_NOT_FOUND', `model ${name} has no version ${version}`);
    const bytes = await this.store.readModel(meta);
    const started = performance.now();
    await this.pool.load(keyOf(name, version), withoutZipMap(bytes));
    const seconds = (performance.now() - started) / 1000;
    this.metrics.loadDuration.observe({ model: name, version }, seconds);
    const key = keyOf(name, version);
    const batching = batchingFor(meta, this.batching);
    const run = (feeds: Record<string, PlainTensor>, fetches: string[]) => {
      this.metrics.batchSize.observe({ model: name, version }, Object.values(feeds)[0]?.dims[0] ?? 0);
      return this.pool.run(key, feeds, fetches);
    };
    const served: ServedModel = { key, meta, model: meta.interface, batcher: batching && new DynamicBatcher(run, batching), inflight: 0, retired: false };
    this.served.set(served.key, served);
    this.metrics.modelsLoaded.set(this.served.size);
    this.loadErrors.delete(name);
    this.log.info({ model: name, version, seconds }, 'model loaded');
    return served;
  }

  /** Frees a version once nothing runs on it (now, or when its last request finishes). */
  private retire(served: ServedModel): void {
    served.retired = true;
    if (served.inflight === 0) void this.unload(served);
  }

  private async unload(served: ServedModel): Promise<void> {
    if (this.served.get(served.key) !== served || !served.retired || served.inflight > 0) return;
    this.served.delete(served.key);
    this.metrics.modelsLoaded.set(this.served.size);
    await this.pool.unload(served.key);
  }

  /** Resolves "name" (the production version) or "name@version" (a pinned one). */
  async resolve(ref: string): Promise<ServedModel> {
    const at = ref.indexOf('@');
    const name = at < 0 ? ref : ref.slice(0, at);
    const pinned = at < 0 ? undefined : ref.slice(at + 1);
    if (!MODEL_NAME.test(name)) throw new ServiceError('MODEL_NOT_FOUND', `no model named "${name}"`);
    if (pinned === undefined) {
      const version = this.production.get(name);
      if (!version) {
        if ((await this.store.listVersions(name)).length > 0)
          throw new ServiceError('MODEL_NOT_FOUND', `model ${name} has no production version; promote one or pin a version with ${name}@<version>`);
        throw new ServiceError('MODEL_NOT_FOUND', `no model named "${name}"`);
      }
      const served = this.served.get(keyOf(name, version));
      if (!served) throw new ServiceError('MODEL_NOT_LOADED', `model ${name}@${version} is not loaded${this.loadErrors.has(name) ? `: ${this.loadErrors.get(name)}` : ' yet'}`);
      return served;
    }
    if (!VERSION_NAME.test(pinned) || !(await this.store.hasVersion(name, pinned)))
      throw new ServiceError('VERSION_NOT_FOUND', `model ${name} has no version "${pinned}"`);
    return this.ensureLoaded(name, pinned);
  }

  /** Rows of named features through a served version (batched with concurrent requests). */
  async predict(served: ServedModel, rows: number[][]): Promise<Prediction[]> {
    const outputs = await this.infer(served, encodeRows(served.model, rows), fetchesOf(served.model));
    return decodeOutputs(served.model, outputs, rows.length);
  }

  /** Tensors in, tensors out (the V2 protocol, and predict above). */
  async infer(served: ServedModel, feeds: Record<string, PlainTensor>, fetches: string[]): Promise<Record<string, PlainTensor>> {
    const { name, version } = served.meta;
    const rows = Object.values(feeds)[0]?.dims[0] ?? 1;
    served.inflight++;
    const started = performance.now();
    try {
      const outputs = await (served.batcher ? served.batcher.submit(feeds, fetches) : this.pool.run(served.key, feeds, fetches));
      this.metrics.inferenceDuration.observe({ model: name, version }, (performance.now() - started) / 1000);
      this.metrics.predictions.inc({ model: name, version, outcome: 'success' }, rows);
      return outputs;
    } catch (err) {
      this.metrics.predictions.inc({ model: name, version, outcome: 'error' }, rows);
      if (err instanceof InferenceError) throw new ServiceError('INFERENCE_FAILED', `model ${served.key} failed to run: ${err.message}`);
      throw err;
    } finally {
      served.inflight--;
      if (served.retired && served.inflight === 0) void this.unload(served);
    }
  }

  /** Validates bytes by loading them in onnxruntime, then stores the version. Nothing is written on failure. */
  async upload(input: UploadInput): Promise<VersionMetadata> {
    const { name, version } = input;
    return this.store.withLock(name, async () => {
      if (await this.store.hasVersion(name, version))
        throw new ServiceError('VERSION_EXISTS', `model ${name} already has version ${version}; versions are immutable, upload a new version`);
      const meta = await this.validate(input);
      await this.store.writeVersion(meta, input.bytes);
      // With the operator in charge, serving follows its routing, not the upload.
      if (!this.routingFromOperator && (input.promote || !this.production.has(name))) await this.promoteLocked(name, version);
      return meta;
    });
  }

  /** Checks bytes as a model: parses, loads in onnxruntime, maps features. Throws 4xx ServiceErrors. */
  validate(input: UploadInput): Promise<VersionMetadata> {
    return validateModel(this.pool, input);
  }

  async promote(name: string, version: string): Promise<HistoryEvent> {
    return this.store.withLock(name, () => this.promoteLocked(name, version));
  }

  private async promoteLocked(name: string, version: string): Promise<HistoryEvent> {
    const target = await this.store.readMetadata(name, version);
    if (!target) {
      if ((await this.store.listVersions(name)).length === 0) throw new ServiceError('MODEL_NOT_FOUND', `no model named "${name}"`);
      throw new ServiceError('VERSION_NOT_FOUND', `model ${name} has no version "${version}"`);
    }
    const previous = this.production.get(name);
    const incoming = await this.ensureLoaded(name, version);
    const previousMeta = previous ? await this.store.readMetadata(name, previous) : undefined;
    const event: HistoryEvent = {
      time: new Date().toISOString(),
      event: previousMeta && previousMeta.created > target.created ? 'rolled_back' : 'promoted',
      version,
      ...(previous ? { previous } : {}),
    };
    await this.store.appendHistory(name, event);
    this.production.set(name, version);
    incoming.retired = false;
    const old = previous !== undefined && previous !== version ? this.served.get(keyOf(name, previous)) : undefined;
    if (old) this.retire(old);
    await this.onModelChanged(name);
    return event;
  }

  async deleteVersion(name: string, version: string): Promise<void> {
    await this.store.withLock(name, async () => {
      if (!(await this.store.hasVersion(name, version))) {
        if ((await this.store.listVersions(name)).length === 0) throw new ServiceError('MODEL_NOT_FOUND', `no model named "${name}"`);
        throw new ServiceError('VERSION_NOT_FOUND', `model ${name} has no version "${version}"`);
      }
      if (this.production.get(name) === version)
        throw new ServiceError('VERSION_IN_PRODUCTION', `${name}@${version} is the production version; promote another version first`);
      const served = this.served.get(keyOf(name, version));
      if (served) this.retire(served);
      await this.store.deleteVersion(name, version);
      await this.onModelChanged(name);
    });
  }

  async describe(name: string): Promise<ModelDescription> {
    const versions = await this.store.listVersions(name);
    if (versions.length === 0) throw new ServiceError('MODEL_NOT_FOUND', `no model named "${name}"`);
    const production = this.production.get(name) ?? null;
    return {
      name,
      production_version: production,
      versions: versions.map((v) => ({ ...v, production: v.version === production, loaded: this.served.has(keyOf(name, v.version)) })),
      history: await this.store.history(name),
    };
  }

  async listModels(): Promise<ModelDescription[]> {
    return Promise.all((await this.store.listModels()).map((n) => this.describe(n)));
  }
}

/**
 * Checks bytes as a model before anything is stored: they parse as ONNX, keep no weights in
 * external files, load in onnxruntime (in a worker of the pool), and fit the feature names.
 * Shared by uploads and the operator's import command. Throws 4xx ServiceErrors.
 */
export async function validateModel(pool: InferencePool, input: UploadInput): Promise<VersionMetadata> {
  let facts;
  try {
    facts = inspectGraph(input.bytes);
  } catch (err) {
    if (err instanceof OnnxFormatError) throw new ServiceError('INVALID_MODEL', `model_data is not an ONNX model (${err.message}); send the bytes of a .onnx file`);
    throw err;
  }
  if (facts.externalTensors.length > 0)
    throw new ServiceError('INVALID_MODEL', `the model keeps tensors in external data files (${facts.externalTensors.slice(0, 5).join(', ')}); re-export it with all weights inside the .onnx file`);
  let signature;
  try {
    signature = await pool.inspect(withoutZipMap(input.bytes, facts));
  } catch (err) {
    if (err instanceof InferenceError) throw new ServiceError('INVALID_MODEL', `onnxruntime cannot load the model: ${err.message}`);
    throw err;
  }
  const model = describeModel(signature, facts, input.features);
  return {
    name: input.name,
    version: input.version,
    sha256: sha256(input.bytes),
    sizeBytes: input.bytes.length,
    created: new Date().toISOString(),
    features: model.features,
    signature,
    interface: model,
    metadata: input.metadata ?? {},
  };
}
