import { MODEL_NAME, VERSION_NAME } from '../../contract/model-names.ts';
import type { ServiceContext } from '../app.ts';
import { ServiceError } from '../errors.ts';
import type { ServedModel } from '../inference/served-model.ts';
import type { PlainTensor, ValueSignature } from '../inference/tensor.ts';
import type { VersionMetadata } from '../store/model-store.ts';
import { v2Datatype, v2Shape } from './tensors.ts';

// The Open Inference Protocol, whatever carries it: what REST (rest.ts) and gRPC (grpc.ts) answer
// alike. Metadata and readiness come from the store and the registry and never load a version;
// inference goes through ServedModel.infer, so both protocols share the dynamic batching.

const SERVER_NAME = 'analytics-api';
const EXTENSIONS = ['binary_tensor_data', 'model_repository', 'model_configuration', 'statistics'];
/** Metadata's platform (KServe's name for ONNX); ModelConfig has Triton's platform and backend. */
const PLATFORM = 'onnx_onnxv1';

export interface ModelRef {
  name: string;
  /** Absent or empty: the production version. */
  version?: string | undefined;
}

/** One request input, decoded once the model's input of that name is known. */
export interface InferInput {
  name: string;
  decode(expected: ValueSignature): PlainTensor;
}

const refOf = ({ name, version }: ModelRef) => (version ? `${name}@${version}` : name);

function describeTensors(values: ValueSignature[]) {
  return values.map((v) => ({ name: v.name, datatype: v2Datatype(v.type) ?? String(v.type), shape: v2Shape(v.shape) }));
}

export class OpenInference {
  private readonly ctx: ServiceContext;

  constructor(ctx: ServiceContext) {
    this.ctx = ctx;
  }

  serverMetadata() {
    return { name: SERVER_NAME, version: this.ctx.serviceVersion, extensions: EXTENSIONS };
  }

  serverReady(): boolean {
    return this.ctx.registry.ready();
  }

  /** A version's stored metadata (the production one when none is named), without loading it. */
  private async versionMeta(ref: ModelRef): Promise<{ meta: VersionMetadata & { loaded: boolean }; versions: string[] }> {
    if (!MODEL_NAME.test(ref.name)) throw new ServiceError('MODEL_NOT_FOUND', `no model named "${ref.name}"`);
    const description = await this.ctx.registry.describe(ref.name);
    const version = ref.version || description.production_version;
    if (!version) throw new ServiceError('MODEL_NOT_FOUND', `model ${ref.name} has no production version; promote one or name a version`);
    const meta = VERSION_NAME.test(version) ? description.versions.find((v) => v.version === version) : undefined;
    if (!meta) throw new ServiceError('VERSION_NOT_FOUND', `model ${ref.name} has no version "${version}"`);
    return { meta, versions: description.versions.map((v) => v.version) };
  }

  async modelMetadata(ref: ModelRef) {
    const { meta, versions } = await this.versionMeta(ref);
    return {
      name: meta.name,
      versions,
      platform: PLATFORM,
      inputs: describeTensors(meta.signature.inputs),
      outputs: describeTensors(meta.signature.outputs),
    };
  }

  /** Whether the version (the production one when none is named) is loaded and serving; never loads it. */
  async modelReady(ref: ModelRef): Promise<boolean> {
    const { meta } = await this.versionMeta(ref);
    return meta.loaded && !this.ctx.registry.unloaded(ref.name);
  }

  /** Triton's model configuration, as far as it describes a model served here. */
  async modelConfig(ref: ModelRef) {
    const { meta } = await this.versionMeta(ref);
    return {
      name: meta.name,
      platform: 'onnxruntime_onnx',
      backend: 'onnxruntime',
      max_batch_size: 0,
      input: meta.signature.inputs.map((v) => ({ name: v.name, data_type: tritonType(v.type), dims: v2Shape(v.shape) })),
      output: meta.signature.outputs.filter((v) => v.isTensor).map((v) => ({ name: v.name, data_type: tritonType(v.type), dims: v2Shape(v.shape) })),
    };
  }

  /** Cumulative figures of each model version that ran here (all of them when no name is given), from the service's metrics. */
  async modelStatistics(ref: ModelRef) {
    if (ref.name) await this.versionMeta(ref); // NOT_FOUND for a model or version that does not exist
    const m = this.ctx.metrics;
    const [predictions, durations, batches] = await Promise.all([m.predictions.get(), m.inferenceDuration.get(), m.batchSize.get()]);
    const stats = new Map<string, { name: string; version: string; rows: number; failed: number; requests: number; seconds: number; runs: number }>();
    const entry = (labels: Record<string, unknown>) => {
      const name = String(labels.model);
      const version = String(labels.version);
      if (ref.name && (name !== ref.name || (ref.version && version !== ref.version))) return undefined;
      const key = `${name}@${version}`;
      const s = stats.get(key) ?? { name, version, rows: 0, failed: 0, requests: 0, seconds: 0, runs: 0 };
      stats.set(key, s);
      return s;
    };
    for (const v of predictions.values) {
      const s = entry(v.labels);
      if (s && v.labels.outcome === 'success') s.rows += v.value;
      else if (s) s.failed += v.value;
    }
    for (const v of durations.values) {
      const s = entry(v.labels);
      if (s && v.metricName === 'model_inference_duration_seconds_count') s.requests += v.value;
      if (s && v.metricName === 'model_inference_duration_seconds_sum') s.seconds += v.value;
    }
    for (const v of batches.values) {
      const s = entry(v.labels);
      if (s && v.metricName === 'model_batch_size_count') s.runs += v.value;
    }
    if (ref.name && stats.size === 0) {
      const { meta } = await this.versionMeta(ref);
      stats.set(meta.version, { name: meta.name, version: meta.version, rows: 0, failed: 0, requests: 0, seconds: 0, runs: 0 });
    }
    return [...stats.values()].map((s) => ({
      name: s.name,
      version: s.version,
      inference_count: s.rows,
      execution_count: s.runs,
      // The service counts failed rows, not requests; they stand in for Triton's failed requests.
      inference_stats: { success: { count: s.requests, ns: Math.round(s.seconds * 1e9) }, fail: { count: s.failed, ns: 0 } },
    }));
  }

  /**
   * Runs the inputs through the model version (pinned, or the production one) and returns the
   * requested outputs (every tensor output when none are named), each input checked first.
   */
  async infer(
    ref: ModelRef,
    inputs: InferInput[],
    outputNames: string[] | undefined,
  ): Promise<{ served: ServedModel; outputs: Array<{ name: string; tensor: PlainTensor }> }> {
    if (inputs.length === 0) throw new ServiceError('VALIDATION_FAILED', 'the request has no inputs');
    const served = await this.ctx.registry.resolveServing(refOf(ref));
    const { inputs: modelInputs, outputs: modelOutputs } = served.meta.signature;
    const feeds: Record<string, PlainTensor> = {};
    for (const input of inputs) {
      const expected = modelInputs.find((i) => i.name === input.name);
      if (!expected)
        throw new ServiceError('VALIDATION_FAILED', `unknown input "${input.name}"; the model's inputs are ${modelInputs.map((i) => i.name).join(', ')}`);
      if (feeds[input.name]) throw new ServiceError('VALIDATION_FAILED', `input "${input.name}" is given twice`);
      feeds[input.name] = input.decode(expected);
    }
    const missing = modelInputs.filter((i) => !feeds[i.name]).map((i) => i.name);
    if (missing.length) throw new ServiceError('VALIDATION_FAILED', `missing inputs: ${missing.join(', ')}`);
    const batchSizes = new Set(Object.values(feeds).map((t) => t.dims[0]));
    if (batchSizes.size > 1) throw new ServiceError('VALIDATION_FAILED', `inputs disagree on the batch dimension: ${[...batchSizes].join(' vs ')}`);

    const names = outputNames ?? modelOutputs.filter((o) => o.isTensor).map((o) => o.name);
    for (const name of names) {
      if (!modelOutputs.some((m) => m.name === name))
        throw new ServiceError('VALIDATION_FAILED', `unknown output "${name}"; the model's outputs are ${modelOutputs.map((m) => m.name).join(', ')}`);
    }
    const outputs = await served.infer(feeds, names);
    return { served, outputs: names.map((name) => ({ name, tensor: outputs[name]! })) };
  }

  /** Every model: its production version and whether it serves (READY) or not (UNAVAILABLE, with the reason). */
  async repositoryIndex(readyOnly = false) {
    const index = await this.ctx.registry.repositoryIndex();
    return readyOnly ? index.filter((m) => m.state === 'READY') : index;
  }

  async load(name: string): Promise<void> {
    await this.ctx.registry.repositoryLoad(name);
  }

  async unload(name: string): Promise<void> {
    await this.ctx.registry.repositoryUnload(name);
  }
}

const TRITON_TYPES: Record<string, string> = {
  bool: 'TYPE_BOOL',
  uint8: 'TYPE_UINT8',
  uint16: 'TYPE_UINT16',
  uint32: 'TYPE_UINT32',
  uint64: 'TYPE_UINT64',
  int8: 'TYPE_INT8',
  int16: 'TYPE_INT16',
  int32: 'TYPE_INT32',
  int64: 'TYPE_INT64',
  float16: 'TYPE_FP16',
  float32: 'TYPE_FP32',
  float64: 'TYPE_FP64',
  string: 'TYPE_STRING',
};

function tritonType(ortType: string | undefined): string {
  return TRITON_TYPES[ortType ?? ''] ?? 'TYPE_INVALID';
}
