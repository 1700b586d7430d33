import type { V1Job, V1Pod } from '@kubernetes/client-node';
import type { ModelVersion } from '../../contract/model-version.ts';
import type { OperatorConfig } from '../config.ts';
import type { KubeClient } from '../runtime/kube-client.ts';
import { CLI, LABELS, MODELS_MOUNT_DIR, importJobName } from '../../contract/names.ts';
import { IMPORT_EXIT_REFUSED, IMPORT_EXIT_USAGE, ImportFailure, ImportResult } from '../../contract/import-result.ts';
import { managedLabels, ownerReference, jobPodBasics } from './ownership.ts';

// The import Job of a ModelVersion: the service image's `analytics-api import` copies a url or
// configMapRef source into the model store (verifying sha256 and loading it with onnxruntime as the
// service would), or verifies a storePath source in place. It writes its result as JSON into the
// container's termination message, which the operator reads back into the status.

export const IMPORT_COMPONENT = 'model-import';
const SOURCE_DIR = '/import';
const SOURCE_FILE = 'model.onnx';
const RESULT_FILE = '/dev/termination-log';

function importArgs(mv: ModelVersion): string[] {
  const { spec } = mv;
  const args = ['import', '--model', spec.model, '--version', spec.version, '--models-dir', MODELS_MOUNT_DIR, '--result-file', RESULT_FILE];
  if (spec.source.url) args.push('--url', spec.source.url);
  else if (spec.source.configMapRef) args.push('--file', `${SOURCE_DIR}/${SOURCE_FILE}`);
  else if (spec.source.storePath) args.push('--store-path', spec.source.storePath);
  if (spec.sha256) args.push('--sha256', spec.sha256);
  if (spec.features) args.push('--features', JSON.stringify(spec.features));
  if (spec.metadata && Object.keys(spec.metadata).length > 0) args.push('--metadata', JSON.stringify(spec.metadata));
  return args;
}

export function importJob(mv: ModelVersion, config: OperatorConfig) {
  const name = importJobName(mv.metadata.name, mv.metadata.uid!);
  const labels = managedLabels(IMPORT_COMPONENT, { [LABELS.model]: mv.spec.model, [LABELS.modelVersion]: mv.metadata.name });
  const configMap = mv.spec.source.configMapRef;
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name, namespace: mv.metadata.namespace!, labels, ownerReferences: [ownerReference(mv, true)] },
    spec: {
      // Retries are for failures a retry can mend (a download); a refused file or bad usage fails the Job at once.
      backoffLimit: config.IMPORT_BACKOFF_LIMIT,
      podFailurePolicy: {
        rules: [{ action: 'FailJob', onExitCodes: { containerName: 'import', operator: 'In', values: [IMPORT_EXIT_USAGE, IMPORT_EXIT_REFUSED] } }],
      },
      activeDeadlineSeconds: config.IMPORT_DEADLINE_SECONDS,
      // The result is in the ModelVersion's status by then; the Job and its pod can go.
      ttlSecondsAfterFinished: config.IMPORT_TTL_SECONDS,
      template: {
        metadata: { labels },
        spec: {
          ...jobPodBasics,
          containers: [
            {
              name: 'import',
              image: config.IMPORT_IMAGE,
              imagePullPolicy: config.IMPORT_IMAGE_PULL_POLICY,
              command: [CLI],
              args: importArgs(mv),
              env: [{ name: 'MODELS_DIR', value: MODELS_MOUNT_DIR }],
              terminationMessagePolicy: 'FallbackToLogsOnError',
              resources: { requests: { cpu: '250m', memory: '256Mi' }, limits: { cpu: '1', memory: '2Gi' } },
              securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } },
              volumeMounts: [
                { name: 'models', mountPath: MODELS_MOUNT_DIR },
                { name: 'tmp', mountPath: '/tmp' },
                ...(configMap ? [{ name: 'source', mountPath: SOURCE_DIR, readOnly: true }] : []),
              ],
            },
          ],
          volumes: [
            { name: 'models', persistentVolumeClaim: { claimName: config.MODELS_PVC } },
            { name: 'tmp', emptyDir: {} },
            ...(configMap ? [{ name: 'source', configMap: { name: configMap.name, items: [{ key: configMap.key, path: SOURCE_FILE }] } }] : []),
          ],
        },
      },
    },
  };
}

/**
 * Why a running import Job's pod cannot get going, in words a person can act on: not schedulable,
 * or a container waiting on something other than its normal start (ErrImagePull, ImagePullBackOff,
 * CreateContainerConfigError, CrashLoopBackOff …). Undefined while it is starting normally.
 */
export function importPodTrouble(pods: V1Pod[]): string | undefined {
  for (const pod of pods) {
    const name = pod.metadata?.name ?? 'the import pod';
    const scheduled = pod.status?.conditions?.find((c) => c.type === 'PodScheduled');
    if (scheduled?.status === 'False')
      return `import pod ${name} cannot be scheduled: ${scheduled.reason ?? 'Unschedulable'}${scheduled.message ? `: ${scheduled.message}` : ''}`;
    for (const c of [...(pod.status?.initContainerStatuses ?? []), ...(pod.status?.containerStatuses ?? [])]) {
      const waiting = c.state?.waiting;
      if (waiting?.reason && !NORMAL_WAITING.has(waiting.reason))
        return `import pod ${name} cannot start: ${waiting.reason}${waiting.message ? `: ${waiting.message}` : ''}`;
    }
  }
  return undefined;
}

const NORMAL_WAITING = new Set(['ContainerCreating', 'PodInitializing']);

export type ImportOutcome = { state: 'running'; message: string } | { state: 'succeeded'; message: string } | { state: 'failed'; message: string };

/** Where a Job stands, from its conditions (Complete / Failed are final). */
export function importOutcome(job: V1Job): ImportOutcome {
  const conditions = job.status?.conditions ?? [];
  const done = conditions.find((c) => (c.type === 'Complete' || c.type === 'Failed') && c.status === 'True');
  if (done?.type === 'Complete') return { state: 'succeeded', message: `import Job ${job.metadata?.name} succeeded` };
  if (done?.type === 'Failed')
    return { state: 'failed', message: `import Job ${job.metadata?.name} failed (${done.reason ?? 'Failed'}${done.message ? `: ${done.message}` : ''})` };
  const active = job.status?.active ?? 0;
  const failed = job.status?.failed ?? 0;
  return {
    state: 'running',
    message: `import Job ${job.metadata?.name} ${active > 0 ? 'running' : 'starting'}${failed > 0 ? ` (${failed} failed attempt${failed === 1 ? '' : 's'})` : ''}`,
  };
}

/**
 * What the import command reported in its pod's termination message: the result JSON on success,
 * `{error}` (or the log tail) on failure. Undefined when no pod left one (kwok's pods never run).
 */
export async function readImportReport(kube: KubeClient, namespace: string, jobName: string): Promise<ImportReport | undefined> {
  const pods = await kube.core.listNamespacedPod({ namespace, labelSelector: `batch.kubernetes.io/job-name=${jobName}` });
  return importReportOf(pods.items as V1Pod[]);
}

export interface ImportReport {
  result?: ImportResult;
  error?: string;
}

/** The report of a Job's pods: a succeeded pod's, else the last one that left a message. */
export function importReportOf(pods: V1Pod[]): ImportReport | undefined {
  const finished = pods
    .map((p) => ({ phase: p.status?.phase, message: p.status?.containerStatuses?.find((c) => c.name === 'import')?.state?.terminated?.message }))
    .filter((p) => p.message);
  const pick = finished.find((p) => p.phase === 'Succeeded') ?? finished.at(-1);
  if (!pick?.message) return undefined;
  try {
    const parsed: unknown = JSON.parse(pick.message);
    const failure = ImportFailure.safeParse(parsed);
    if (failure.success) return { error: failure.data.error };
    const result = ImportResult.safeParse(parsed);
    if (result.success) return { result: result.data };
  } catch {
    // Not JSON: the log tail (FallbackToLogsOnError) of a crash.
  }
  return { error: pick.message.trim().split('\n').slice(-3).join('; ') };
}
