import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { ModelVersion } from '../contract/model-version.ts';
import { ModelVersionSpec } from '../contract/model-version.ts';
import { desiredRouting, duplicateOf, servingVersion } from './serving-rule.ts';

let uid = 0;
function mv(
  version: string,
  opts: { created?: string; stage?: 'Production' | 'Staging' | 'Archived'; imported?: boolean; deleting?: boolean; name?: string; model?: string } = {},
): ModelVersion {
  const model = opts.model ?? 'iris';
  return {
    apiVersion: 'serving.analytics.dev/v1alpha1',
    kind: 'ModelVersion',
    metadata: {
      name: opts.name ?? `${model}-${version.replaceAll('.', '-')}`,
      namespace: 'analytics',
      uid: `uid-${++uid}`,
      creationTimestamp: opts.created ?? '2026-12-01T00:00:00Z',
      ...(opts.deleting ? { deletionTimestamp: '2026-12-02T00:00:00Z' } : {}),
    },
    spec: ModelVersionSpec.parse({ model, version, source: { url: 'http://models.test/m.onnx' }, stage: opts.stage ?? 'Production' }),
    status: {
      conditions: [
        { type: 'Imported', status: opts.imported === false ? 'False' : 'True', lastTransitionTime: '2026-12-01T00:00:00Z', reason: 'Imported', message: '' },
      ],
      artifact: { path: `production/${model}/${version}/model.onnx`, sha256: 'a'.repeat(64) },
      features: ['x'],
    },
  };
}
const serves = (list: ModelVersion[]) => servingVersion(list)?.spec.version;

describe('which version serves', () => {
  test('the highest semantic version, not the newest object', () => {
    assert.equal(
      serves([mv('10', { created: '2026-12-01T00:00:00Z' }), mv('9', { created: '2026-12-03T00:00:00Z' }), mv('2.5', { created: '2026-12-02T00:00:00Z' })]),
      '10',
    );
    assert.equal(serves([mv('1.0.0'), mv('1.0.0-rc.2')]), '1.0.0', 'a release is above its pre-releases');
    assert.equal(serves([mv('2'), mv('1.9.9')]), '2', '"2" reads as 2.0.0');
  });

  test('deleting and re-applying the older version leaves the higher one serving', () => {
    const v1 = mv('1', { created: '2026-12-01T00:00:00Z' });
    const v2 = mv('2', { created: '2026-12-02T00:00:00Z' });
    assert.equal(serves([v1, v2]), '2');
    const recreated = mv('1', { created: '2026-12-05T00:00:00Z' });
    assert.equal(serves([recreated, v2]), '2');
    assert.equal(serves([v2, recreated].reverse()), '2', 'whatever the listing order');
  });

  test('only imported, live Production versions take part; rollback is archiving or deleting the higher one', () => {
    assert.equal(serves([mv('1'), mv('2', { stage: 'Staging' })]), '1');
    assert.equal(serves([mv('1'), mv('2', { stage: 'Archived' })]), '1');
    assert.equal(serves([mv('1'), mv('2', { imported: false })]), '1');
    assert.equal(serves([mv('1'), mv('2', { deleting: true })]), '1');
    assert.equal(serves([mv('1', { stage: 'Staging' })]), undefined);
  });

  test('one version under two objects: the older owns it ("1" and "1.0.0" are the same version)', () => {
    const first = mv('1', { created: '2026-12-01T00:00:00Z' });
    const same = mv('1.0.0', { created: '2026-12-02T00:00:00Z' });
    assert.equal(duplicateOf(same, [first, same])?.metadata.name, first.metadata.name);
    assert.equal(duplicateOf(first, [first, same]), undefined);
    assert.equal(serves([first, same]), '1');
  });

  test('the routing names, for each model, what serves it and where its file is', () => {
    const routing = desiredRouting([mv('1'), mv('2'), mv('3', { model: 'wine', stage: 'Staging' }), mv('1', { model: 'wine' })]);
    assert.deepEqual(routing, {
      models: {
        iris: { version: '2', sha256: 'a'.repeat(64), path: 'production/iris/2/model.onnx', features: ['x'] },
        wine: { version: '1', sha256: 'a'.repeat(64), path: 'production/wine/1/model.onnx', features: ['x'] },
      },
    });
    assert.deepEqual(Object.keys(routing.models), ['iris', 'wine'], 'models in a stable order');
  });
});

describe('rollouts (spec.rollout)', () => {
  const withRollout = (version: string, rollout: Record<string, unknown> | undefined, generation = 1) => {
    const m = mv(version);
    m.metadata.generation = generation;
    m.spec = ModelVersionSpec.parse({ ...m.spec, rollout: { strategy: 'Canary', steps: [10, 100] } });
    if (rollout) m.status = { ...m.status, rollout: rollout as never };
    return m;
  };
  const step = (weight: number, phase = 'Progressing', generation = 1) => ({
    observedGeneration: generation,
    phase,
    strategy: 'Canary',
    stable: '1',
    stepIndex: 0,
    step: '1/2',
    weight,
    stepStartedAt: '2026-12-01T00:00:00Z',
  });

  test('a new version with a rollout is routed as a canary of the stable one, at its step’s weight', () => {
    const routing = desiredRouting([mv('1'), withRollout('2', step(10))]);
    assert.equal(routing.models.iris?.version, '1');
    assert.deepEqual([routing.models.iris?.canary?.version, routing.models.iris?.canary?.weight, routing.models.iris?.canary?.mode], ['2', 10, 'canary']);
    // Before its first step is written: weight 0.
    assert.equal(desiredRouting([mv('1'), withRollout('2', undefined)]).models.iris?.canary?.weight, 0);
  });

  test('succeeded: it serves alone; rolled back: the stable one serves alone, until the spec changes', () => {
    assert.deepEqual(desiredRouting([mv('1'), withRollout('2', step(100, 'Succeeded'))]).models.iris, {
      version: '2',
      sha256: 'a'.repeat(64),
      path: 'production/iris/2/model.onnx',
      features: ['x'],
    });
    const back = desiredRouting([mv('1'), withRollout('2', step(0, 'RolledBack'))]).models.iris;
    assert.equal(back?.version, '1');
    assert.equal(back?.canary, undefined);
    // A new generation of its spec (spec.rollout edited): it rolls out again.
    assert.equal(desiredRouting([mv('1'), withRollout('2', step(0, 'RolledBack'), 2)]).models.iris?.canary?.version, '2');
  });

  test('a first version with a rollout has nothing to compare with: it serves at once', () => {
    const routing = desiredRouting([withRollout('1', undefined)]);
    assert.equal(routing.models.iris?.version, '1');
    assert.equal(routing.models.iris?.canary, undefined);
  });

  test('the stable version is the highest one with nothing left to prove', () => {
    // 2 is mid-canary when 3 arrives with its own rollout: 3 rolls out against 1, 2 stands by.
    const routing = desiredRouting([mv('1'), withRollout('2', step(10)), withRollout('3', undefined)]);
    assert.equal(routing.models.iris?.version, '1');
    assert.equal(routing.models.iris?.canary?.version, '3');
  });
});
