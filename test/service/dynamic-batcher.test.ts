import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DynamicBatcher } from '../../service/inference/dynamic-batcher.ts';
import type { PlainTensor } from '../../service/inference/tensor.ts';

// The batcher's own rules. The run function here is a stand-in (fault injection: onnxruntime
// cannot be made to fail one row of a batch on demand); real ONNX runs are batched in
// test/v2/open-inference-protocol.test.ts.

const rowTensor = (values: number[]): Record<string, PlainTensor> => ({
  input: { type: 'float32', dims: [1, values.length], data: Float32Array.from(values) },
});

function doubling(calls: number[][]) {
  return async (feeds: Record<string, PlainTensor>) => {
    const t = feeds.input!;
    const data = t.data as Float32Array;
    calls.push([t.dims[0]!]);
    if (data.includes(-1)) throw new Error('poisoned row');
    return { out: { type: 'float32' as const, dims: [t.dims[0]!, t.dims[1]!], data: data.map((v) => v * 2) } };
  };
}

test('requests arriving together share one run and each gets its own rows', async () => {
  const calls: number[][] = [];
  const batcher = new DynamicBatcher(doubling(calls), { maxBatchSize: 64, maxQueueDelayMs: 0 });
  const results = await Promise.all([1, 2, 3, 4].map((v) => batcher.submit(rowTensor([v, v + 0.5]), ['out'])));
  assert.deepEqual(calls, [[4]]);
  for (const [i, r] of results.entries()) assert.deepEqual([...(r.out!.data as Float32Array)], [(i + 1) * 2, (i + 1.5) * 2]);
  assert.deepEqual(results[0]!.out!.dims, [1, 2]);
});

test('the maximum batch size splits a burst into several runs', async () => {
  const calls: number[][] = [];
  const batcher = new DynamicBatcher(doubling(calls), { maxBatchSize: 3, maxQueueDelayMs: 0 });
  await Promise.all(Array.from({ length: 7 }, (_, i) => batcher.submit(rowTensor([i]), ['out'])));
  assert.deepEqual(
    calls.map((c) => c[0]),
    [3, 3, 1],
  );
});

test('a queue delay gathers requests that arrive a little apart', async () => {
  const calls: number[][] = [];
  const batcher = new DynamicBatcher(doubling(calls), { maxBatchSize: 64, maxQueueDelayMs: 30 });
  const first = batcher.submit(rowTensor([1]), ['out']);
  await new Promise((r) => setTimeout(r, 5));
  const second = batcher.submit(rowTensor([2]), ['out']);
  await Promise.all([first, second]);
  assert.deepEqual(calls, [[2]]);
});

test('one bad request fails only itself (fault injected)', async () => {
  const calls: number[][] = [];
  const batcher = new DynamicBatcher(doubling(calls), { maxBatchSize: 64, maxQueueDelayMs: 0 });
  const settled = await Promise.allSettled([
    batcher.submit(rowTensor([1]), ['out']),
    batcher.submit(rowTensor([-1]), ['out']),
    batcher.submit(rowTensor([3]), ['out']),
  ]);
  assert.deepEqual(
    settled.map((s) => s.status),
    ['fulfilled', 'rejected', 'fulfilled'],
  );
  assert.deepEqual([...((settled[2] as PromiseFulfilledResult<Record<string, PlainTensor>>).value.out!.data as Float32Array)], [6]);
});

test('requests with different shapes or outputs do not share a run', async () => {
  const calls: number[][] = [];
  const batcher = new DynamicBatcher(doubling(calls), { maxBatchSize: 64, maxQueueDelayMs: 0 });
  await Promise.all([batcher.submit(rowTensor([1, 2]), ['out']), batcher.submit(rowTensor([1, 2, 3]), ['out']), batcher.submit(rowTensor([4, 5]), ['out'])]);
  assert.deepEqual(calls.map((c) => c[0]).sort(), [1, 2]);
});
