import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BoundedMap } from '../../service/bounded-map.ts';

test('holds at most its capacity, dropping the oldest written', () => {
  const m = new BoundedMap<number>(3);
  for (const [i, k] of ['a', 'b', 'c', 'd', 'e'].entries()) m.set(k, i);
  assert.equal(m.size, 3);
  assert.deepEqual([...m.keys()].sort(), ['c', 'd', 'e']);
  assert.equal(m.get('a'), undefined);
  assert.equal(m.get('e'), 4);
});

test('a key written again counts from its last write', () => {
  const m = new BoundedMap<number>(3);
  m.set('a', 1);
  m.set('b', 2);
  m.set('a', 3); // a is now the newest
  m.set('c', 4);
  m.set('d', 5); // evicts b, the oldest still live
  assert.equal(m.get('a'), 3);
  assert.equal(m.get('b'), undefined);
  assert.deepEqual([...m.keys()].sort(), ['a', 'c', 'd']);
  assert.ok(m.size <= 3);
});
