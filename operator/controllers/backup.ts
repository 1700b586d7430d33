import { objectKey, splitKey, type ControllerManager, type OperatorContext } from '../context.ts';
import type { Controller, Result } from '../runtime/controller.ts';
import type { ModelVersion } from '../../contract/model-version.ts';
import { LABELS, backupCronJobName } from '../../contract/names.ts';
import { backupCronJob } from '../builders/backup-cronjob.ts';
import { appliedHashOf } from '../builders/ownership.ts';
import { byVersion, isDeleting } from '../serving-rule.ts';

// The backup controller (key: namespace/model): one CronJob per model, owned by all its live
// ModelVersions. When the last one is deleted the garbage collector removes the CronJob, so there is
// nothing to do for a model without live versions.

function backupReconciler(ctx: OperatorContext) {
  return async (key: string): Promise<Result | undefined> => {
    const [namespace, model] = splitKey(key);
    const live = ctx.cache.modelVersions.list(namespace).filter((mv) => mv.spec.model === model && !isDeleting(mv) && mv.metadata.uid);
    if (live.length === 0) return;
    const desired = backupCronJob(model, live, namespace, ctx.config);
    const existing = ctx.cache.backupCronJobs.get(backupCronJobName(model), namespace);
    if (appliedHashOf(existing) === appliedHashOf(desired)) return;
    await ctx.kube.apply(desired);
    const highest = [...live].sort(byVersion).at(-1)!;
    const { schedule, retentionDays, suspend } = highest.spec.backup;
    ctx.events.record(
      highest,
      'Normal',
      existing ? 'BackupUpdated' : 'BackupScheduled',
      `CronJob ${desired.metadata.name}: "${schedule}"${suspend ? ' (suspended)' : ''}, keeping ${retentionDays} days, owned by ${live.length} version${live.length === 1 ? '' : 's'}`,
    );
  };
}

/** What wakes it (key: namespace/model): a ModelVersion created, deleted or with a new spec; the model's CronJob. */
export function setupBackupController(mgr: ControllerManager): Controller {
  const { cache, config } = mgr.ctx;
  const model = (mv: ModelVersion) => objectKey(mv.metadata.namespace!, mv.spec.model);
  const specOrDeletion = (mv: ModelVersion, old: ModelVersion) => old.metadata.generation !== mv.metadata.generation || isDeleting(old) !== isDeleting(mv);
  return mgr
    .controller('backup', 2, backupReconciler(mgr.ctx), () => new Set(cache.modelVersions.list(config.NAMESPACE).map(model)))
    .watch(cache.modelVersions, (mv, old, event) => (event === 'update' && old && !specOrDeletion(mv, old) ? undefined : model(mv)))
    .watch(cache.backupCronJobs, (cj) => {
      const m = cj.metadata?.labels?.[LABELS.model];
      return m && cj.metadata?.namespace ? objectKey(cj.metadata.namespace, m) : undefined;
    });
}
