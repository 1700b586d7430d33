import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { MemoryPredictionLog } from './prediction-log.ts';

const iris = { key: 'iris@1', meta: { name: 'iris', version: '1' }, task: 'classification' as const };
const species = { key: 'species@2', meta: { name: 'species', version: '2' }, task: 'classification' as const };
const uuid = z.uuid();

test('every prediction gets a UUID that feedback can take once, with what was predicted', async () => {
  const log = new MemoryPredictionLog(60, 100);
  const id = log.remember(iris, { prediction: 2, confidence: 0.7 });
  const [a, b] = log.rememberAll(species, [
    { prediction: 0, confidence: 0.9, label: 'setosa' },
    { prediction: 2, confidence: 0.6, label: 'virginica' },
  ]);
  for (const x of [id, a!, b!]) assert.ok(uuid.safeParse(x).success, `${x} is a UUID`);
  assert.equal(new Set([id, a, b]).size, 3);
  assert.deepEqual(await log.take(id), { model: 'iris', version: '1', task: 'classification', predicted: 2 });
  assert.equal(await log.take(id), undefined, 'feedback counts once');
  assert.deepEqual(await log.take(b!), { model: 'species', version: '2', task: 'classification', predicted: 'virginica' });
  assert.deepEqual(await log.take(a!), { model: 'species', version: '2', task: 'classification', predicted: 'setosa' });
});

test('restore puts a taken prediction back; an id with a right slot but other random bits is unknown', async () => {
  const log = new MemoryPredictionLog(60, 100);
  const id = log.remember(iris, { prediction: 1.5, confidence: null });
  const record = await log.take(id);
  log.restore(id, record!);
  assert.deepEqual(await log.take(id), record);
  const other = log.remember(iris, { prediction: 1, confidence: null });
  const forged = `${other.slice(0, 28)}${other[28] === '0' ? '1' : '0'}${other.slice(29)}`;
  assert.equal(await log.take(forged), undefined);
  assert.equal(await log.take('00000000-0000-4000-8000-000000000000'), undefined);
  assert.ok(await log.take(other));
});

test('bounded: past its entries the oldest go first; entries expire after the TTL', async () => {
  const log = new MemoryPredictionLog(60, 3);
  const ids = Array.from({ length: 5 }, (_, i) => log.remember(iris, { prediction: i, confidence: null }));
  const found = await Promise.all(ids.map((id) => log.take(id)));
  assert.deepEqual(
    found.map((r) => r?.predicted),
    [undefined, undefined, 2, 3, 4],
  );
  const short = new MemoryPredictionLog(0.05, 10);
  const id = short.remember(iris, { prediction: 1, confidence: null });
  await sleep(120);
  assert.equal(await short.take(id), undefined);
});
