// One inference thread. It owns onnxruntime sessions (one per loaded model version) and runs them
// on request, so the event loop never blocks on session creation or run().
import { parentPort, workerData } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import type { ModelSignature, PlainTensor, TensorType, ValueSignature } from './tensor.ts';
import type { WorkerRequest, WorkerReply } from './inference-pool.ts';

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

async function handle(msg: WorkerRequest): Promise<WorkerReply> {
  switch (msg.op) {
    case 'load': {
      const session = await ort.InferenceSession.create(msg.bytes, sessionOptions);
      const previous = sessions.get(msg.key);
      sessions.set(msg.key, session);
      await previous?.release();
      return { id: msg.id, ok: true, signature: signatureOf(session) };
    }
    case 'inspect': {
      const session = await ort.InferenceSession.create(msg.bytes, sessionOptions);
      try {
        return { id: msg.id, ok: true, signature: signatureOf(session) };
      } finally {
        await session.release();
      }
    }
    case 'run': {
      const session = sessions.get(msg.key);
      if (!session) return { id: msg.id, ok: false, error: `model ${msg.key} is not loaded` };
      const feeds: Record<string, ort.Tensor> = {};
      for (const [name, t] of Object.entries(msg.feeds)) feeds[name] = new ort.Tensor(t.type as never, t.data as never, t.dims);
      const results = await session.run(feeds, msg.fetches);
      const outputs: Record<string, PlainTensor> = {};
      for (const name of msg.fetches) outputs[name] = toPlain(results[name]!);
      for (const t of Object.values(results)) t.dispose?.();
      return { id: msg.id, ok: true, outputs };
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
    (err: unknown) => parentPort!.postMessage({ id: msg.id, ok: false, error: err instanceof Error ? err.message : String(err) } satisfies WorkerReply),
  );
});
