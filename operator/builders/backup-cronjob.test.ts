import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ModelVersion, ModelVersionSpecInput } from '../../contract/model-version.ts';
import { ModelVersionSpec } from '../../contract/model-version.ts';
import { figures } from '../../contract/figures.ts';
import { loadOperatorConfig } from '../config.ts';
import { backupCronJob } from './backup-cronjob.ts';

const config = loadOperatorConfig({ NAMESPACE: 'analytics' });

function mv(name: string, created: string, spec: Partial<ModelVersionSpecInput> = {}): ModelVersion {
  return {
    apiVersion: 'serving.analytics.dev/v1alpha1',
    kind: 'ModelVersion',
    metadata: { name, namespace: 'analytics', uid: `uid-${name}`, creationTimestamp: created },
    spec: ModelVersionSpec.parse({ model: 'iris', version: name.split('-')[1], source: { storePath: `production/iris/${name}/model.onnx` }, ...spec }),
  };
}

test("one CronJob per model, owned by all its versions, on the highest version's schedule", () => {
  const cj = backupCronJob(
    'iris',
    [mv('iris-2', '2026-12-02T00:00:00Z', { backup: { schedule: '30 3 * * *', retentionDays: 3 } }), mv('iris-1', '2026-12-01T00:00:00Z')],
    'analytics',
    config,
  );
  assert.equal(cj.metadata.name, 'analytics-backup-iris');
  assert.deepEqual(
    cj.metadata.ownerReferences.map((o) => o.name),
    ['iris-1', 'iris-2'],
  );
  assert.ok(
    cj.metadata.ownerReferences.every((o) => !('controller' in o)),
    'no controller owner: the garbage collector removes it with the last owner',
  );
  assert.equal(cj.spec.schedule, '30 3 * * *');
  assert.equal(cj.spec.concurrencyPolicy, 'Forbid');
  const pod = cj.spec.jobTemplate.spec.template.spec;
  assert.deepEqual(pod.initContainers[0]!.args, ['backup', 'create', '--model', 'iris', '--dest', '/backups', '--models-dir', '/app/models']);
  assert.deepEqual(pod.containers[0]!.args, ['backup', 'prune', '--model', 'iris', '--dest', '/backups', '--retention-days', '3']);
  assert.ok(
    pod.initContainers[0]!.volumeMounts.some((m) => m.name === 'models' && m.readOnly),
    'the store is mounted read-only',
  );
});

test("the defaults are the specification's: daily, 7 days", () => {
  const cj = backupCronJob('iris', [mv('iris-1', '2026-12-01T00:00:00Z')], 'analytics', config);
  assert.equal(cj.spec.schedule, figures.backup.schedule);
  assert.equal(cj.spec.suspend, false);
  assert.equal(cj.spec.jobTemplate.spec.template.spec.containers[0]!.args.at(-1), String(figures.backup.retentionDays));
});

test('the applied-hash annotation changes with the content, not with the order of the owners', () => {
  const a = mv('iris-1', '2026-12-01T00:00:00Z');
  const b = mv('iris-2', '2026-12-02T00:00:00Z');
  const hash = (list: ModelVersion[]) => backupCronJob('iris', list, 'analytics', config).metadata.annotations['serving.analytics.dev/applied-hash'];
  assert.equal(hash([a, b]), hash([b, a]));
  assert.notEqual(hash([a, b]), hash([a]));
});
