import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import { cacheKey } from './cache.ts';
import { MemoryCache } from './memory-cache.ts';

const answer = (prediction: number) => ({ prediction, confidence: null });

test('the in-memory cache holds at most its bound, dropping the least recently used', async () => {
  const cache = new MemoryCache(3);
  for (const k of ['a', 'b', 'c']) await cache.set(k, answer(1), 60);
  await cache.get('a'); // a is now the most recently used
  await cache.set('d', answer(2), 60);
  assert.equal(await cache.get('b'), undefined);
  assert.deepEqual(await cache.get('a'), answer(1));
  assert.deepEqual(await cache.get('d'), answer(2));
});

test('entries expire after their TTL', async () => {
  const cache = new MemoryCache(10);
  await cache.set('k', answer(1), 0.05);
  assert.deepEqual(await cache.get('k'), answer(1));
  await sleep(120);
  assert.equal(await cache.get('k'), undefined);
});

test("a purge drops one model's answers, every version, and no other model's", async () => {
  const cache = new MemoryCache(10);
  await cache.set(cacheKey('iris', '1', [1, 2]), answer(1), 60);
  await cache.set(cacheKey('iris', '2', [1, 2]), answer(2), 60);
  await cache.set(cacheKey('iris-2', '1', [1, 2]), answer(3), 60);
  await cache.purgeModel('iris');
  assert.equal(await cache.get(cacheKey('iris', '1', [1, 2])), undefined);
  assert.equal(await cache.get(cacheKey('iris', '2', [1, 2])), undefined);
  assert.deepEqual(await cache.get(cacheKey('iris-2', '1', [1, 2])), answer(3), 'a model whose name starts the same is kept');
});
