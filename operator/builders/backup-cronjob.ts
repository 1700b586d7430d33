import type { ModelVersion } from '../../contract/model-version.ts';
import type { OperatorConfig } from '../config.ts';
import { BACKUPS_MOUNT_DIR, CLI, LABELS, MODELS_MOUNT_DIR, backupCronJobName } from '../../contract/names.ts';
import { byVersion } from '../serving-rule.ts';
import { managedLabels, ownerReference, withAppliedHash, jobPodBasics } from './ownership.ts';

// One backup CronJob per model, `analytics-backup-<model>`: schedule, retention and suspend come
// from the model's highest ModelVersion; every ModelVersion of the model is an owner, so the garbage
// collector removes the CronJob when the last one goes. Its Job runs the service image's CLI: an
// init container `backup create --model` (the store read-only), then `backup prune --model` with the
// retention: each archive holds that model only, and each model's retention prunes only its own.

export const BACKUP_COMPONENT = 'backup';

export function backupCronJob(model: string, live: readonly ModelVersion[], namespace: string, config: OperatorConfig) {
  const owners = [...live].sort(byVersion);
  const highest = owners.at(-1)!;
  const { schedule, retentionDays, suspend } = highest.spec.backup;
  const labels = managedLabels(BACKUP_COMPONENT, { [LABELS.model]: model });
  const container = (name: string, args: string[], mounts: Array<{ name: string; mountPath: string; readOnly?: boolean }>) => ({
    name,
    image: config.IMPORT_IMAGE,
    imagePullPolicy: config.IMPORT_IMAGE_PULL_POLICY,
    command: [CLI],
    args,
    terminationMessagePolicy: 'FallbackToLogsOnError',
    resources: { requests: { cpu: '100m', memory: '128Mi' }, limits: { cpu: '1', memory: '1Gi' } },
    securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } },
    volumeMounts: [...mounts, { name: 'tmp', mountPath: '/tmp' }],
  });
  return withAppliedHash({
    apiVersion: 'batch/v1',
    kind: 'CronJob',
    metadata: {
      name: backupCronJobName(model),
      namespace,
      labels,
      annotations: {} as Record<string, string>,
      ownerReferences: owners.map((mv) => ownerReference(mv, false)),
    },
    spec: {
      schedule,
      // The schedule means UTC, like the archive names, whatever the node's clock zone.
      timeZone: 'Etc/UTC',
      suspend,
      concurrencyPolicy: 'Forbid',
      startingDeadlineSeconds: 3600,
      successfulJobsHistoryLimit: 3,
      failedJobsHistoryLimit: 3,
      jobTemplate: {
        metadata: { labels },
        spec: {
          backoffLimit: 1,
          activeDeadlineSeconds: 6 * 3600,
          template: {
            metadata: { labels },
            spec: {
              ...jobPodBasics,
              initContainers: [
                container(
                  'create',
                  ['backup', 'create', '--model', model, '--dest', BACKUPS_MOUNT_DIR, '--models-dir', MODELS_MOUNT_DIR],
                  [
                    { name: 'models', mountPath: MODELS_MOUNT_DIR, readOnly: true },
                    { name: 'backups', mountPath: BACKUPS_MOUNT_DIR },
                  ],
                ),
              ],
              containers: [
                container(
                  'prune',
                  ['backup', 'prune', '--model', model, '--dest', BACKUPS_MOUNT_DIR, '--retention-days', String(retentionDays)],
                  [{ name: 'backups', mountPath: BACKUPS_MOUNT_DIR }],
                ),
              ],
              volumes: [
                { name: 'models', persistentVolumeClaim: { claimName: config.MODELS_PVC, readOnly: true } },
                { name: 'backups', persistentVolumeClaim: { claimName: config.BACKUPS_PVC } },
                { name: 'tmp', emptyDir: {} },
              ],
            },
          },
        },
      },
    },
  });
}
