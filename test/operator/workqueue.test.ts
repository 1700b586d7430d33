import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { BucketRateLimiter, ItemExponentialFailureRateLimiter, MaxOfRateLimiter, WorkQueue, type WorkqueueMetrics } from '../../operator/runtime/workqueue.ts';

// The work queue's contract (client-go's), on its own: what the controllers rely on for
// de-duplication, one worker per key, backoff per key and an overall retry rate.

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function counting(): WorkqueueMetrics & { counts: { adds: number; retries: number; depth: number } } {
  const counts = { adds: 0, retries: 0, depth: 0 };
  return {
    counts,
    adds: () => counts.adds++,
    retries: () => counts.retries++,
    depth: (n) => (counts.depth = n),
    queueLatency: () => {},
    workDuration: () => {},
  };
}

describe('WorkQueue', () => {
  test('an item added while it waits is queued once; order is first in, first out', async () => {
    const m = counting();
    const q = new WorkQueue('t', undefined, m);
    for (const k of ['a', 'b', 'a', 'c', 'b']) q.add(k);
    assert.equal(q.len(), 3);
    assert.equal(m.counts.adds, 3);
    assert.deepEqual([await q.get(), await q.get(), await q.get()], ['a', 'b', 'c']);
    assert.equal(m.counts.depth, 0);
  });

  test('an item added while a worker holds it comes back only after done(): never two workers on one key', async () => {
    const q = new WorkQueue('t');
    q.add('a');
    const held = await q.get();
    q.add('a');
    q.add('a');
    assert.equal(q.len(), 0, 'not handed out while held');
    const next = q.get();
    let got: string | undefined;
    void next.then((k) => (got = k));
    await sleep(5);
    assert.equal(got, undefined);
    q.done(held!);
    assert.equal(await next, 'a', 'queued again, once');
    q.done('a');
    assert.equal(q.len(), 0);
  });

  test('a waiting get() is handed the next add', async () => {
    const q = new WorkQueue('t');
    const pending = q.get();
    q.add('x');
    assert.equal(await pending, 'x');
  });

  test('addAfter keeps the earliest delay; addRateLimited backs off per item, forget() resets it', async () => {
    const m = counting();
    const q = new WorkQueue('t', new ItemExponentialFailureRateLimiter(10, 1000), m);
    q.addAfter('a', 200);
    q.addAfter('a', 20);
    q.addAfter('a', 500);
    const t0 = performance.now();
    assert.equal(await q.get(), 'a');
    assert.ok(performance.now() - t0 < 150, 'the 20 ms delay won');
    q.done('a');
    assert.equal(q.delayed(), 0);
    const delays: number[] = [];
    for (let i = 0; i < 4; i++) {
      const s = performance.now();
      q.addRateLimited('b');
      await q.get();
      q.done('b');
      delays.push(performance.now() - s);
    }
    assert.equal(q.numRequeues('b'), 4);
    assert.equal(m.counts.retries, 4);
    for (const [i, min] of [10, 20, 40, 80].entries()) assert.ok(delays[i]! >= min - 2, `retry ${i + 1} waited ${delays[i]} ms, at least ${min}`);
    q.forget('b');
    assert.equal(q.numRequeues('b'), 0);
  });

  test('the exponential backoff is capped; the token bucket spaces retries over all items', () => {
    const exp = new ItemExponentialFailureRateLimiter(5, 1000);
    const waits = Array.from({ length: 12 }, () => exp.when('x'));
    assert.deepEqual(waits.slice(0, 4), [5, 10, 20, 40]);
    assert.equal(Math.max(...waits), 1000);
    assert.equal(exp.when('y'), 5, 'another item starts at the base');
    const bucket = new BucketRateLimiter(10, 3);
    const burst = [bucket.when(), bucket.when(), bucket.when()];
    assert.deepEqual(burst, [0, 0, 0]);
    const after = [bucket.when(), bucket.when()];
    assert.ok(after[0]! > 90 && after[0]! <= 100, `4th waits ~100 ms, got ${after[0]}`);
    assert.ok(after[1]! > 190 && after[1]! <= 200, `5th waits ~200 ms, got ${after[1]}`);
    const max = new MaxOfRateLimiter(new ItemExponentialFailureRateLimiter(5, 1000), new BucketRateLimiter(1, 1));
    assert.equal(max.when('z'), 5);
    assert.ok(max.when('z') > 900, 'the bucket wins when it is empty');
  });

  test('shutDown hands undefined to waiting workers and waits for held items', async () => {
    const q = new WorkQueue('t');
    q.add('a');
    const held = await q.get();
    const idle = q.get();
    q.addAfter('later', 10_000);
    let drained = false;
    const down = q.shutDown().then(() => (drained = true));
    assert.equal(await idle, undefined);
    await sleep(5);
    assert.equal(drained, false, 'an item is still held');
    q.done(held!);
    await down;
    assert.equal(q.delayed(), 0, 'no timer keeps the process alive');
    q.add('b');
    assert.equal(await q.get(), undefined);
  });
});
