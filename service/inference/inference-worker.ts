// One inference thread. It owns onnxruntime sessions (one per loaded model version) and runs them
// on request, so the event loop never blocks on session creation or run(). It also checks uploads:
// the protobuf walk, the session, the interface and a trial run all happen here, off the event
// loop, however large or crafted the model.
import { parentPort, workerData } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import { ServiceError } from '../errors.ts';
import type { WorkerReply, WorkerRequest } from './inference-pool.ts';
import { decodeOutputs, describeModel, encodeRows, OutputError, type ModelInterface } from './model-interface.ts';
import { inspectGraph, OnnxFormatError, withoutZipMap } from './onnx-graph.ts';
import type { ModelSignature, PlainTensor, TensorType, ValueSignature } from './tensor.ts';

const { intraOpThreads } = workerData as { intraOpThreads: number };
const sessionOptions: ort.InferenceSession.SessionOptions = {
  // ORT would otherwise size its thread pool from the host's cores, not the container's limit.
  intraOpNumThreads: intraOpThreads,
  interOpNumThreads: 1,
  executionMode: 'sequential',
  graphOptimizationLevel: 'all',
};
const sessions = new Map<string, ort.InferenceSession>();

function signatureOf(session: ort.InferenceSession): ModelSignature {
  const describe = (m: ort.InferenceSession.ValueMetadata): ValueSignature =>
    m.isTensor ? { name: m.name, isTensor: true, type: m.type, shape: [...m.shape] } : { name: m.name, isTensor: false };
  return { inputs: session.inputMetadata.map(describe), outputs: session.outputMetadata.map(describe) };
}

function toPlain(t: ort.Tensor): PlainTensor {
  return { type: t.type as TensorType, dims: [...t.dims], data: t.data as PlainTensor['data'] };
}

/** onnxruntime's message without its source paths and line numbers, one line, bounded. */
function shortMessage(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return text
    .replace(/\S*onnxruntime[^\s:]*(:\d+)*/g, '')
    .replace(/\s+/g, ' ')
    .trim()
    .slice(0, 300);
}

async function run(session: ort.InferenceSession, feeds: Record<string, PlainTensor>, fetches: string[]): Promise<Record<string, PlainTensor>> {
  const tensors: Record<string, ort.Tensor> = {};
  for (const [name, t] of Object.entries(feeds)) tensors[name] = new ort.Tensor(t.type as never, t.data as never, t.dims);
  let results: ort.InferenceSession.OnnxValueMapType;
  try {
    results = await session.run(tensors, fetches);
  } catch (err) {
    throw new Error(shortMessage(err));
  }
  const outputs: Record<string, PlainTensor> = {};
  for (const name of fetches) outputs[name] = toPlain(results[name]!);
  for (const t of Object.values(results)) t.dispose?.();
  return outputs;
}

/**
 * An upload, checked: ONNX protobuf, no external data anywhere in it, loads in onnxruntime, fits
 * the feature names, and answers a row of ones (two rows when the batch is dynamic) with one
 * finite, well-shaped prediction per row.
 */
async function inspect(bytes: Uint8Array, features: string[] | undefined): Promise<{ signature: ModelSignature; model: ModelInterface }> {
  let facts;
  try {
    facts = inspectGraph(bytes);
  } catch (err) {
    if (err instanceof OnnxFormatError) throw new ServiceError('INVALID_MODEL', `not an ONNX model (${err.message}); expected the bytes of a .onnx file`);
    throw err;
  }
  if (facts.externalTensors.length > 0)
    throw new ServiceError(
      'INVALID_MODEL',
      `the model keeps tensors in external data files (${facts.externalTensors.slice(0, 5).join(', ')}); re-export it with all weights inside the .onnx file`,
    );
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(withoutZipMap(bytes, facts), sessionOptions);
  } catch (err) {
    throw new ServiceError('INVALID_MODEL', `onnxruntime cannot load the model: ${shortMessage(err)}`);
  }
  try {
    const signature = signatureOf(session);
    const model = describeModel(signature, facts, features);
    // Three rows where the batch is dynamic: one answer per row, not a shape that happens to match.
    const batch = signature.inputs.every((i) => typeof i.shape?.[0] !== 'number' || (i.shape[0] as number) < 0) ? 3 : 1;
    const rows = Array.from({ length: batch }, () => new Array<number>(model.features.length).fill(1));
    try {
      decodeOutputs(model, await run(session, encodeRows(model, rows), Object.values(model.outputs)), batch);
    } catch (err) {
      const why = err instanceof OutputError ? err.message : `it failed: ${(err as Error).message}`;
      throw new ServiceError('INVALID_MODEL', `the model cannot answer a row of ones (${batch} row${batch > 1 ? 's' : ''}): ${why}`);
    }
    return { signature, model };
  } finally {
    await session.release();
  }
}

async function handle(msg: WorkerRequest): Promise<WorkerReply> {
  switch (msg.op) {
    case 'load': {
      const session = await ort.InferenceSession.create(withoutZipMap(msg.bytes), sessionOptions);
      const previous = sessions.get(msg.key);
      sessions.set(msg.key, session);
      await previous?.release();
      return { id: msg.id, ok: true };
    }
    case 'inspect': {
      const { signature, model } = await inspect(msg.bytes, msg.features);
      return { id: msg.id, ok: true, signature, model };
    }
    case 'run': {
      const session = sessions.get(msg.key);
      if (!session) return { id: msg.id, ok: false, error: `model ${msg.key} is not loaded` };
      return { id: msg.id, ok: true, outputs: await run(session, msg.feeds, msg.fetches) };
    }
    case 'close': {
      for (const session of sessions.values()) await session.release();
      sessions.clear();
      // Nothing keeps the thread alive once its port is closed: it exits by itself.
      setImmediate(() => parentPort!.close());
      return { id: msg.id, ok: true };
    }
    case 'unload': {
      const session = sessions.get(msg.key);
      sessions.delete(msg.key);
      await session?.release();
      return { id: msg.id, ok: true };
    }
  }
}

parentPort!.on('message', (msg: WorkerRequest) => {
  handle(msg).then(
    (reply) => parentPort!.postMessage(reply),
    (err: unknown) =>
      parentPort!.postMessage({
        id: msg.id,
        ok: false,
        error: err instanceof Error ? err.message : String(err),
        ...(err instanceof ServiceError ? { code: err.code, details: err.details } : {}),
      } satisfies WorkerReply),
  );
});
