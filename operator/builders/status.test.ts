import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ModelVersion } from '../../contract/model-version.ts';
import { desiredStatus, sameStatus, type ObservedState } from './status.ts';

const mv = (status?: ModelVersion['status'], generation = 3): ModelVersion => ({
  apiVersion: 'serving.analytics.dev/v1alpha1',
  kind: 'ModelVersion',
  metadata: { name: 'iris-1', generation },
  spec: {
    model: 'iris',
    version: '1',
    source: { url: 'http://x/y' },
    stage: 'Production',
    backup: { schedule: '0 2 * * *', retentionDays: 7, suspend: false },
  },
  ...(status ? { status } : {}),
});
const yes = (reason: string) => ({ status: 'True' as const, reason, message: reason });
const no = (reason: string) => ({ status: 'False' as const, reason, message: reason });
const observed = (over: Partial<ObservedState> = {}): ObservedState => ({
  phase: 'Importing',
  message: 'importing',
  imported: no('Importing'),
  serving: no('NotImported'),
  ready: no('Importing'),
  servingNow: false,
  ...over,
});

test('conditions carry the generation, and keep their transition time while their status holds', () => {
  const t0 = new Date('2026-12-01T10:00:00.123Z');
  const first = desiredStatus(mv(), observed(), t0);
  assert.equal(first.observedGeneration, 3);
  assert.deepEqual(
    first.conditions?.map((c) => [c.type, c.status, c.lastTransitionTime, c.observedGeneration]),
    [
      ['Imported', 'False', '2026-12-01T10:00:00Z', 3],
      ['Serving', 'False', '2026-12-01T10:00:00Z', 3],
      ['Ready', 'False', '2026-12-01T10:00:00Z', 3],
    ],
  );
  const t1 = new Date('2026-12-01T10:05:00Z');
  const next = desiredStatus(mv(first), observed({ phase: 'Serving', imported: yes('Imported'), serving: no('RoutingPending'), ready: no('Progressing') }), t1);
  const times = Object.fromEntries(next.conditions!.map((c) => [c.type, c.lastTransitionTime]));
  assert.deepEqual(times, { Imported: '2026-12-01T10:05:00Z', Serving: '2026-12-01T10:00:00Z', Ready: '2026-12-01T10:00:00Z' });
});

test('servingSince is set when the version starts serving and kept after', () => {
  const serving = observed({ phase: 'Serving', imported: yes('Imported'), serving: yes('Serving'), ready: yes('Serving'), servingNow: true });
  const first = desiredStatus(mv(), serving, new Date('2026-12-01T10:00:00Z'));
  assert.equal(first.servingSince, '2026-12-01T10:00:00Z');
  assert.equal(desiredStatus(mv(first), serving, new Date('2026-12-02T10:00:00Z')).servingSince, '2026-12-01T10:00:00Z');
});

test('a reconcile that observed nothing new writes nothing: equal whatever the key order', () => {
  const status = desiredStatus(mv(), observed(), new Date('2026-12-01T10:00:00Z'));
  const reverse = (v: unknown): unknown =>
    Array.isArray(v)
      ? v.map(reverse)
      : v && typeof v === 'object'
        ? Object.fromEntries(
            Object.entries(v)
              .reverse()
              .map(([k, x]) => [k, reverse(x)]),
          )
        : v;
  const reordered = reverse(status) as typeof status;
  assert.ok(sameStatus(status, reordered));
  assert.ok(sameStatus(status, desiredStatus(mv(status), observed(), new Date('2026-12-03T00:00:00Z'))));
  assert.ok(!sameStatus(status, desiredStatus(mv(status), observed({ message: 'import Job running' }))));
});
