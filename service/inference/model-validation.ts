import { sha256Hex } from '../../contract/hashing.ts';
import { ServiceError } from '../errors.ts';
import type { VersionMetadata } from '../store/model-store.ts';
import { InferenceError, type InferencePool } from './inference-pool.ts';
import { describeModel } from './model-interface.ts';
import { inspectGraph, OnnxFormatError, withoutZipMap } from './onnx-graph.ts';

export interface ModelUpload {
  name: string;
  version: string;
  bytes: Uint8Array;
  features?: string[];
  metadata?: Record<string, unknown>;
}

/**
 * Checks bytes as a model before anything is stored: they parse as ONNX, keep no weights in
 * external files, load in onnxruntime (in a worker of the pool), and fit the feature names.
 * Shared by uploads and the operator's import command. Throws 4xx ServiceErrors.
 */
export async function validateModel(pool: InferencePool, input: ModelUpload): Promise<VersionMetadata> {
  let facts;
  try {
    facts = inspectGraph(input.bytes);
  } catch (err) {
    if (err instanceof OnnxFormatError)
      throw new ServiceError('INVALID_MODEL', `model_data is not an ONNX model (${err.message}); send the bytes of a .onnx file`);
    throw err;
  }
  if (facts.externalTensors.length > 0)
    throw new ServiceError(
      'INVALID_MODEL',
      `the model keeps tensors in external data files (${facts.externalTensors.slice(0, 5).join(', ')}); re-export it with all weights inside the .onnx file`,
    );
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
    sha256: sha256Hex(input.bytes),
    sizeBytes: input.bytes.length,
    created: new Date().toISOString(),
    features: model.features,
    signature,
    interface: model,
    metadata: input.metadata ?? {},
  };
}
