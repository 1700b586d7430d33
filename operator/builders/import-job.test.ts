import assert from 'node:assert/strict';
import type { V1Job, V1Pod } from '@kubernetes/client-node';
import { describe, test } from 'node:test';
import type { ModelVersion, ModelVersionSpecInput } from '../../contract/model-version.ts';
import { ModelVersionSpec } from '../../contract/model-version.ts';
import { loadOperatorConfig } from '../config.ts';
import { importJob, importOutcome, importPodTrouble, importReportOf } from './import-job.ts';

const config = loadOperatorConfig({ NAMESPACE: 'analytics' });

function mv(spec: Partial<ModelVersionSpecInput>, name = 'iris-2'): ModelVersion {
  return {
    apiVersion: 'serving.analytics.dev/v1alpha1',
    kind: 'ModelVersion',
    metadata: { name, namespace: 'analytics', uid: '0d4c1c8e-0000-4000-8000-000000000001', creationTimestamp: '2026-12-01T10:00:00Z' },
    spec: ModelVersionSpec.parse({ model: 'iris', version: '2', source: { url: 'http://models.test/iris.onnx' }, ...spec }),
  };
}

const container = (job: ReturnType<typeof importJob>) => job.spec.template.spec.containers[0]!;

describe('the import Job', () => {
  test('a configMapRef source is mounted read-only and passed with --file; sha256 and features go along', () => {
    const job = importJob(mv({ source: { configMapRef: { name: 'iris-model-2', key: 'model.onnx' } }, sha256: 'a'.repeat(64), features: ['x', 'y'] }), config);
    const c = container(job);
    assert.deepEqual(c.command, ['analytics-api']);
    assert.deepEqual(c.args.slice(0, 9), [
      'import',
      '--model',
      'iris',
      '--version',
      '2',
      '--models-dir',
      '/app/models',
      '--result-file',
      '/dev/termination-log',
    ]);
    assert.deepEqual(c.args.slice(9), ['--file', '/import/model.onnx', '--sha256', 'a'.repeat(64), '--features', '["x","y"]']);
    assert.deepEqual(job.spec.template.spec.volumes.at(-1), {
      name: 'source',
      configMap: { name: 'iris-model-2', items: [{ key: 'model.onnx', path: 'model.onnx' }] },
    });
    assert.ok(c.volumeMounts.some((m) => m.name === 'source' && m.mountPath === '/import' && m.readOnly));
  });

  test('url and storePath sources, and no source volume for them', () => {
    assert.deepEqual(container(importJob(mv({}), config)).args.slice(9), ['--url', 'http://models.test/iris.onnx']);
    const stored = importJob(mv({ source: { storePath: 'production/iris/2/model.onnx' } }), config);
    assert.deepEqual(container(stored).args.slice(9), ['--store-path', 'production/iris/2/model.onnx']);
    assert.ok(!stored.spec.template.spec.volumes.some((v) => v.name === 'source'));
  });

  test('owned by its ModelVersion, labelled, hardened, bounded in time and retries', () => {
    const job = importJob(mv({}), config);
    assert.deepEqual(job.metadata.ownerReferences, [
      {
        apiVersion: 'serving.analytics.dev/v1alpha1',
        kind: 'ModelVersion',
        name: 'iris-2',
        uid: '0d4c1c8e-0000-4000-8000-000000000001',
        controller: true,
        blockOwnerDeletion: true,
      },
    ]);
    assert.equal(job.metadata.labels['serving.analytics.dev/model-version'], 'iris-2');
    assert.equal(job.metadata.labels['app.kubernetes.io/part-of'], 'analytics-api');
    const pod = job.spec.template.spec;
    assert.equal(pod.automountServiceAccountToken, false);
    assert.deepEqual(pod.securityContext, { runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
    assert.deepEqual(container(job).securityContext, { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
    assert.equal(job.spec.backoffLimit, config.IMPORT_BACKOFF_LIMIT);
    // A refused file (exit 3) or bad usage (2) fails at once; other failures (a download) are retried.
    assert.deepEqual(job.spec.podFailurePolicy, {
      rules: [{ action: 'FailJob', onExitCodes: { containerName: 'import', operator: 'In', values: [2, 3] } }],
    });
    assert.equal(job.spec.activeDeadlineSeconds, config.IMPORT_DEADLINE_SECONDS);
  });
});

describe('reading an import back', () => {
  const job = (conditions: Array<{ type: string; status: string; reason?: string; message?: string }>, status: Partial<V1Job['status']> = {}): V1Job => ({
    metadata: { name: 'import-iris-2-abcde' },
    status: { conditions: conditions as never, ...status },
  });

  test('the Job: running, succeeded, failed with its reason', () => {
    assert.deepEqual(importOutcome(job([], { active: 1 })), { state: 'running', message: 'import Job import-iris-2-abcde running' });
    assert.match(importOutcome(job([], { failed: 1 })).message, /starting \(1 failed attempt\)/);
    assert.equal(importOutcome(job([{ type: 'Complete', status: 'True' }])).state, 'succeeded');
    assert.deepEqual(
      importOutcome(job([{ type: 'Failed', status: 'True', reason: 'BackoffLimitExceeded', message: 'Job has reached the specified backoff limit' }])),
      {
        state: 'failed',
        message: 'import Job import-iris-2-abcde failed (BackoffLimitExceeded: Job has reached the specified backoff limit)',
      },
    );
  });

  const pod = (phase: string, message: string | undefined): V1Pod => ({
    status: {
      phase,
      containerStatuses: [
        { name: 'import', image: 'x', imageID: '', ready: false, restartCount: 0, state: { terminated: { exitCode: 0, ...(message ? { message } : {}) } } },
      ],
    },
  });
  const result = {
    model: 'iris',
    version: '2',
    path: 'production/iris/2/model.onnx',
    sha256: 'b'.repeat(64),
    sizeBytes: 10,
    features: ['x'],
    alreadyPresent: false,
  };

  test("the pods' termination messages: the succeeded pod's result, an error, a crash's log tail, or nothing", () => {
    assert.deepEqual(importReportOf([pod('Failed', '{"error":"first try"}'), pod('Succeeded', JSON.stringify(result))]), { result });
    assert.deepEqual(importReportOf([pod('Failed', '{"error":"sha256 mismatch: expected a, the file has b"}')]), {
      error: 'sha256 mismatch: expected a, the file has b',
    });
    assert.deepEqual(importReportOf([pod('Failed', 'line 1\nline 2\nline 3\nSegmentation fault\n')]), { error: 'line 2; line 3; Segmentation fault' });
    assert.deepEqual(importReportOf([pod('Failed', '{"sha256": "not a result"}')]), { error: '{"sha256": "not a result"}' });
    assert.equal(importReportOf([pod('Running', undefined)]), undefined);
    assert.equal(importReportOf([]), undefined);
  });
});

describe('an import pod that cannot start says why', () => {
  const pod = (status: V1Pod['status']): V1Pod => ({ metadata: { name: 'import-iris-2-abcde-x7k2p' }, status });
  test('unschedulable, an image that cannot be pulled, a bad configuration; nothing while it starts normally', () => {
    assert.equal(
      importPodTrouble([
        pod({
          phase: 'Pending',
          conditions: [{ type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message: '0/1 nodes are available: 1 Insufficient cpu.' }],
        }),
      ]),
      'import pod import-iris-2-abcde-x7k2p cannot be scheduled: Unschedulable: 0/1 nodes are available: 1 Insufficient cpu.',
    );
    const waiting = (reason: string, message?: string) =>
      pod({
        phase: 'Pending',
        containerStatuses: [
          { name: 'import', image: 'x', imageID: '', ready: false, restartCount: 0, state: { waiting: { reason, ...(message ? { message } : {}) } } },
        ],
      });
    assert.equal(
      importPodTrouble([waiting('ErrImagePull', 'pull access denied for analytics-api')]),
      'import pod import-iris-2-abcde-x7k2p cannot start: ErrImagePull: pull access denied for analytics-api',
    );
    assert.match(importPodTrouble([waiting('CreateContainerConfigError', 'secret "x" not found')]) ?? '', /CreateContainerConfigError: secret "x" not found/);
    assert.equal(importPodTrouble([waiting('ContainerCreating')]), undefined);
    assert.equal(importPodTrouble([]), undefined);
  });
});
