import { sha256Hex } from '../../contract/hashing.ts';
import { ServiceError } from '../errors.ts';
import type { VersionMetadata } from '../store/model-store.ts';
import { InferenceError, type InferencePool } from './inference-pool.ts';

export interface ModelUpload {
  name: string;
  version: string;
  bytes: Uint8Array;
  features?: string[];
  metadata?: Record<string, unknown>;
  /**
   * Where the bytes came from, as the user gave them: "model_data", "the request body",
   * "--file model.onnx". A model the service cannot serve is named by it ("--file x.txt: not an
   * ONNX model (…)"), so the CLI and the REST API each name their own input.
   */
  source?: string;
}

/**
 * Checks bytes as a model before anything is stored, in a worker of the pool (off the event loop):
 * they parse as ONNX, keep no weights in external files, load in onnxruntime, fit the feature
 * names and answer a trial row with finite, well-shaped predictions.
 * Shared by uploads and the operator's import command. Throws 4xx ServiceErrors.
 */
export async function validateModel(pool: InferencePool, input: ModelUpload): Promise<VersionMetadata> {
  let checked;
  try {
    checked = await pool.inspect(input.bytes, input.features);
  } catch (err) {
    const named = (message: string) => (input.source ? `${input.source}: ${message}` : message);
    if (err instanceof InferenceError && err.code)
      throw new ServiceError(err.code, err.code === 'INVALID_MODEL' ? named(err.message) : err.message, err.details);
    if (err instanceof InferenceError) throw new ServiceError('INVALID_MODEL', named(`onnxruntime cannot load the model: ${err.message}`));
    throw err;
  }
  return {
    name: input.name,
    version: input.version,
    sha256: sha256Hex(input.bytes),
    sizeBytes: input.bytes.length,
    created: new Date().toISOString(),
    features: checked.model.features,
    signature: checked.signature,
    interface: checked.model,
    metadata: input.metadata ?? {},
  };
}
