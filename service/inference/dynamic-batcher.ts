import type { PlainTensor, TensorData } from './tensor.ts';

// Triton-style dynamic batching: requests for one model version that arrive together (in the
// same turn of the event loop, or within the queue delay) are stacked along the batch dimension
// and run as one ONNX run; each caller gets its own rows back. Only requests with the same
// inputs (names, types, non-batch dimensions) and outputs share a run. If a merged run fails,
// each request runs alone, so one bad request fails only itself.

export interface BatchingOptions {
  /** Rows in one run at most. */
  maxBatchSize: number;
  /** How long the first request of a batch may wait for others; 0: the rest of this event-loop turn. */
  maxQueueDelayMs: number;
}

type Feeds = Record<string, PlainTensor>;
type Outputs = Record<string, PlainTensor>;
type Run = (feeds: Feeds, fetches: string[]) => Promise<Outputs>;

interface Pending {
  feeds: Feeds;
  fetches: string[];
  rows: number;
  resolve: (o: Outputs) => void;
  reject: (e: unknown) => void;
}

interface Group {
  pending: Pending[];
  rows: number;
  timer: NodeJS.Immediate | NodeJS.Timeout;
}

export class DynamicBatcher {
  private readonly run: Run;
  private readonly options: BatchingOptions;
  private readonly groups = new Map<string, Group>();

  constructor(run: Run, options: BatchingOptions) {
    this.run = run;
    this.options = options;
  }

  /** `key`: groupKey(feeds, fetches), when the caller knows it already. */
  submit(feeds: Feeds, fetches: string[], key = groupKey(feeds, fetches)): Promise<Outputs> {
    let first: PlainTensor | undefined;
    for (const name in feeds) {
      first = feeds[name];
      break;
    }
    const rows = first?.dims[0] ?? 0;
    if (!first || rows >= this.options.maxBatchSize) return this.run(feeds, fetches);
    return new Promise<Outputs>((resolve, reject) => {
      let group = this.groups.get(key);
      if (group && group.rows + rows > this.options.maxBatchSize) {
        this.flush(key);
        group = undefined;
      }
      if (!group) {
        const timer = this.options.maxQueueDelayMs > 0 ? setTimeout(() => this.flush(key), this.options.maxQueueDelayMs) : setImmediate(() => this.flush(key));
        group = { pending: [], rows: 0, timer };
        this.groups.set(key, group);
      }
      group.pending.push({ feeds, fetches, rows, resolve, reject });
      group.rows += rows;
      if (group.rows >= this.options.maxBatchSize) this.flush(key);
    });
  }

  private flush(key: string): void {
    const group = this.groups.get(key);
    if (!group) return;
    this.groups.delete(key);
    clearTimeout(group.timer as NodeJS.Timeout);
    clearImmediate(group.timer as NodeJS.Immediate);
    const { pending } = group;
    if (pending.length === 1) {
      const p = pending[0]!;
      this.run(p.feeds, p.fetches).then(p.resolve, p.reject);
      return;
    }
    const merged: Feeds = {};
    for (const name of Object.keys(pending[0]!.feeds)) merged[name] = stack(pending.map((p) => p.feeds[name]!));
    this.run(merged, pending[0]!.fetches).then(
      (outputs) => {
        const parts = unstack(
          outputs,
          pending.map((p) => p.rows),
        );
        if (!parts) return this.alone(pending);
        for (const [i, p] of pending.entries()) p.resolve(parts[i]!);
      },
      () => this.alone(pending),
    );
  }

  /** Each request on its own: after a merged run failed, or gave outputs without a batch dimension. */
  private alone(pending: Pending[]): void {
    for (const p of pending) this.run(p.feeds, p.fetches).then(p.resolve, p.reject);
  }
}

/** Which requests may share a run: the same inputs (names, types, non-batch dimensions) and outputs. */
export function groupKey(feeds: Feeds, fetches: string[]): string {
  const inputs = Object.keys(feeds)
    .sort()
    .map((n) => `${n}:${feeds[n]!.type}:${feeds[n]!.dims.slice(1).join('x')}`);
  return `${inputs.join(',')}|${fetches.join(',')}`;
}

function stack(tensors: PlainTensor[]): PlainTensor {
  const rows = tensors.reduce((n, t) => n + t.dims[0]!, 0);
  const first = tensors[0]!;
  const dims = [rows, ...first.dims.slice(1)];
  if (Array.isArray(first.data)) return { type: first.type, dims, data: tensors.flatMap((t) => t.data as string[]) };
  const length = tensors.reduce((n, t) => n + t.data.length, 0);
  const Ctor = first.data.constructor as new (n: number) => Exclude<TensorData, string[]>;
  const data = new Ctor(length);
  let offset = 0;
  for (const t of tensors) {
    (data as Float32Array).set(t.data as Float32Array, offset);
    offset += t.data.length;
  }
  return { type: first.type, dims, data };
}

/** Splits outputs by rows; undefined when an output has no batch dimension to split along. */
function unstack(outputs: Outputs, rows: number[]): Outputs[] | undefined {
  const total = rows.reduce((a, b) => a + b, 0);
  const parts: Outputs[] = rows.map(() => ({}));
  for (const [name, t] of Object.entries(outputs)) {
    if (t.dims[0] !== total) return undefined;
    const perRow = total === 0 ? 0 : t.data.length / total;
    let start = 0;
    rows.forEach((r, i) => {
      parts[i]![name] = { type: t.type, dims: [r, ...t.dims.slice(1)], data: t.data.slice(start * perRow, (start + r) * perRow) as TensorData };
      start += r;
    });
  }
  return parts;
}
