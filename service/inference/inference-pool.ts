import { Worker } from 'node:worker_threads';
import type { ErrorCode, ProblemDetail } from '../errors.ts';
import type { ModelInterface } from './model-interface.ts';
import type { ModelSignature, PlainTensor } from './tensor.ts';

// A pool of inference threads sized from the container's CPU limit. Every worker holds a session
// for every loaded model version, so any worker can serve any request; a request goes to the worker
// with the fewest in flight. A worker that dies is replaced and its sessions reloaded.

export type WorkerRequest =
  | { id: number; op: 'load'; key: string; bytes: Uint8Array }
  | { id: number; op: 'inspect'; bytes: Uint8Array; features: string[] | undefined }
  | { id: number; op: 'run'; key: string; feeds: Record<string, PlainTensor>; fetches: string[] }
  | { id: number; op: 'unload'; key: string }
  | { id: number; op: 'close' };

export type WorkerReply =
  | { id: number; ok: true; signature?: ModelSignature; model?: ModelInterface; outputs?: Record<string, PlainTensor> }
  | { id: number; ok: false; error: string; code?: ErrorCode; details?: ProblemDetail[] | undefined };

type Pending = { resolve: (r: WorkerReply) => void; reject: (e: Error) => void };

interface Slot {
  worker: Worker;
  inflight: number;
  pending: Map<number, Pending>;
}

/** A worker's failure; `code` when it is the client's (an upload that is not a model the service can serve). */
export class InferenceError extends Error {
  readonly code: ErrorCode | undefined;
  readonly details: ProblemDetail[] | undefined;
  constructor(message: string, code?: ErrorCode, details?: ProblemDetail[]) {
    super(message);
    this.code = code;
    this.details = details;
  }
}

const WORKER_URL = new URL('./inference-worker.ts', import.meta.url);

export class InferencePool {
  readonly size: number;
  private readonly intraOpThreads: number;
  private readonly slots: Slot[] = [];
  /** What every worker must hold: model key → bytes, replayed into a replacement worker. */
  private readonly loaded = new Map<string, Uint8Array>();
  private nextId = 1;
  private closed = false;

  constructor(options: { size: number; intraOpThreads?: number }) {
    this.size = Math.max(1, options.size);
    this.intraOpThreads = options.intraOpThreads ?? 1;
    for (let i = 0; i < this.size; i++) this.slots.push(this.spawn());
  }

  private spawn(): Slot {
    const worker = new Worker(WORKER_URL, { workerData: { intraOpThreads: this.intraOpThreads } });
    const slot: Slot = { worker, inflight: 0, pending: new Map() };
    worker.on('message', (reply: WorkerReply) => {
      const p = slot.pending.get(reply.id);
      if (!p) return;
      slot.pending.delete(reply.id);
      slot.inflight--;
      p.resolve(reply);
    });
    const fail = (err: Error) => {
      for (const p of slot.pending.values()) p.reject(new InferenceError(`inference worker stopped: ${err.message}`));
      slot.pending.clear();
      slot.inflight = 0;
      if (this.closed) return;
      const index = this.slots.indexOf(slot);
      if (index >= 0) {
        const fresh = this.spawn();
        this.slots[index] = fresh;
        for (const [key, bytes] of this.loaded) void this.send(fresh, { op: 'load', key, bytes }).catch(() => {});
      }
    };
    worker.on('error', fail);
    worker.on('exit', (code) => {
      if (!this.closed) fail(new Error(`exit code ${code}`));
    });
    return slot;
  }

  private send(slot: Slot, req: DistributiveOmit<WorkerRequest, 'id'>, transfer?: ArrayBuffer[]): Promise<WorkerReply> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      slot.pending.set(id, { resolve, reject });
      slot.inflight++;
      slot.worker.postMessage({ ...req, id }, transfer ?? []);
    });
  }

  private static unwrap(reply: WorkerReply): Extract<WorkerReply, { ok: true }> {
    if (!reply.ok) throw new InferenceError(reply.error, reply.code, reply.details);
    return reply;
  }

  /** Checks an upload in a worker (inference-worker.ts inspect): its signature and interface, or an InferenceError with a code. */
  async inspect(bytes: Uint8Array, features: string[] | undefined): Promise<{ signature: ModelSignature; model: ModelInterface }> {
    const reply = InferencePool.unwrap(await this.send(this.leastBusy(), { op: 'inspect', bytes, features }));
    return { signature: reply.signature!, model: reply.model! };
  }

  /** Loads a model version into every worker; resolves when all hold it. */
  async load(key: string, bytes: Uint8Array): Promise<void> {
    this.loaded.set(key, bytes);
    try {
      const replies = await Promise.all(this.slots.map((s) => this.send(s, { op: 'load', key, bytes })));
      replies.forEach(InferencePool.unwrap);
    } catch (err) {
      this.loaded.delete(key);
      await this.unload(key);
      throw err;
    }
  }

  async unload(key: string): Promise<void> {
    this.loaded.delete(key);
    await Promise.all(this.slots.map((s) => this.send(s, { op: 'unload', key }).catch(() => undefined)));
  }

  async run(key: string, feeds: Record<string, PlainTensor>, fetches: string[]): Promise<Record<string, PlainTensor>> {
    const reply = InferencePool.unwrap(await this.send(this.leastBusy(), { op: 'run', key, feeds, fetches }));
    return reply.outputs!;
  }

  private leastBusy(): Slot {
    let best = this.slots[0]!;
    for (const s of this.slots) if (s.inflight < best.inflight) best = s;
    return best;
  }

  /**
   * Each worker releases its sessions and exits by itself; only one that does not within a few
   * seconds is terminated. (Terminating a thread while onnxruntime holds sessions in it can abort
   * the whole process: "terminate called after throwing an instance of 'Napi::Error'".)
   */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(
      this.slots.map(async (s) => {
        const exited = new Promise<void>((resolve) => s.worker.once('exit', () => resolve()));
        const released = this.send(s, { op: 'close' }).catch(() => undefined);
        const timeout = new Promise<'timeout'>((resolve) => setTimeout(resolve, 5_000, 'timeout').unref());
        if ((await Promise.race([released.then(() => exited), timeout])) === 'timeout') await s.worker.terminate();
      }),
    );
  }
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
