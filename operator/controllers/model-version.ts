import type { V1ConfigMap, V1Pod } from '@kubernetes/client-node';
import { describeError, isNotFound } from '../../contract/kubernetes-errors.ts';
import type { ModelVersion, ModelVersionStatus, Phase } from '../../contract/model-version.ts';
import { ModelVersionSpec } from '../../contract/model-version.ts';
import { LABELS, ROUTING_CONFIGMAP, importJobName } from '../../contract/names.ts';
import { parseRouting, type ModelRoute } from '../../contract/routing.ts';
import type { RolloutEvent } from '../../contract/rollout.ts';
import { addFinalizer, hasFinalizer, removeFinalizer } from '../builders/finalizer.ts';
import { importJob, importOutcome, importPodTrouble, readImportReport } from '../builders/import-job.ts';
import { appliedRoutingText } from '../builders/routing-configmap.ts';
import type { ConditionState, ObservedState } from '../builders/status.ts';
import { desiredStatus, sameStatus } from '../builders/status.ts';
import { objectKey, splitKey, type ControllerManager, type OperatorContext } from '../context.ts';
import type { Controller, Result } from '../runtime/controller.ts';
import { duplicateOf, isDeleting, isImported, isRolledBack, modelPlan, servingInputsChanged } from '../serving-rule.ts';
import { RolloutWindows } from './rollout.ts';

// The ModelVersion controller (key: namespace/name). For one ModelVersion it
//   1. keeps the finalizer on it, and on deletion releases it once the routing no longer names it;
//   2. imports it: creates the import Job, follows it and its pod, reads the result it reported;
//   3. works out where it stands (Pending, Importing, Imported, Progressing, Serving, Standby,
//      Archived, Failed) from the Job, the routing ConfigMap and what the ready service pods serve;
//   4. writes that status (only when it changed), an Event for each transition, and a warn log
//      line and a metric for each failure.
// The routing ConfigMap is the routing controller's; backups the backup controller's.

const SOURCE_RETRY_MS = 5_000;
const FINALIZE_RETRY_MS = 2_000;

const t = (reason: string, message: string): ConditionState => ({ status: 'True', reason, message });
const f = (reason: string, message: string): ConditionState => ({ status: 'False', reason, message });

/** Reasons that are failures: a Warning event, a warn log line and the failures metric. */
const FAILURES = new Set(['InvalidSpec', 'DuplicateVersion', 'SourceNotFound', 'ImportFailed', 'ImportPodFailing']);

interface ImportState {
  imported: boolean;
  phase?: Phase; // Pending, Importing or Failed while not imported
  condition: ConditionState;
  message: string;
  artifact?: ModelVersionStatus['artifact'];
  features?: string[];
  signature?: Record<string, unknown>;
  importJob?: string;
  requeueAfterMs?: number;
}

function modelVersionReconciler(ctx: OperatorContext) {
  const windows = new RolloutWindows();
  return async (key: string): Promise<Result | undefined> => {
    const [namespace, name] = splitKey(key);
    const mv = ctx.cache.modelVersions.get(name, namespace);
    if (!mv) return; // gone: its Job and CronJob ownership go with it (garbage collector)
    if (isDeleting(mv)) {
      windows.forget(mv.metadata.uid!);
      return finalize(ctx, mv);
    }
    if (!hasFinalizer(mv)) await addFinalizer(ctx.kube, mv);

    const sameModel = ctx.cache.modelVersions.list(namespace).filter((o) => o.spec.model === mv.spec.model);
    const imp = await importState(ctx, mv, sameModel);
    const observed = await servingState(ctx, mv, sameModel, imp, windows);
    const status = desiredStatus(mv, observed);
    if (!sameStatus(mv.status, status)) {
      await ctx.kube.applyModelVersionStatus(namespace, name, status);
      recordTransition(ctx, mv, status);
    }
    if (observed.event) recordRolloutEvent(ctx, mv, observed.event);
    const requeue = Math.min(imp.requeueAfterMs ?? Number.POSITIVE_INFINITY, observed.requeueAfterMs ?? Number.POSITIVE_INFINITY);
    if (Number.isFinite(requeue)) return { requeueAfterMs: requeue };
  };
}

/** A rollout's step passed, it succeeded, or it rolled back: an Event, a log line, and at its end the metric. */
function recordRolloutEvent(ctx: OperatorContext, mv: ModelVersion, event: RolloutEvent): void {
  const name = `${mv.metadata.namespace}/${mv.metadata.name}`;
  switch (event.kind) {
    case 'advanced':
      ctx.events.record(mv, 'Normal', 'RolloutStep', event.message);
      ctx.log.info('rollout step', { modelVersion: name, message: event.message });
      break;
    case 'succeeded':
      ctx.events.record(mv, 'Normal', 'RolloutSucceeded', event.message);
      ctx.log.info('rollout succeeded', { modelVersion: name, message: event.message });
      ctx.metrics.rollouts.inc({ result: 'succeeded' });
      break;
    case 'rolled_back':
      ctx.events.record(mv, 'Warning', 'RolloutFailed', event.message);
      ctx.log.warn('rollout rolled back', { modelVersion: name, message: event.message });
      ctx.metrics.rollouts.inc({ result: 'rolled_back' });
      break;
  }
}

/** Step 2: the import, from the status (once imported, always imported; a failure stays) or the Job. */
async function importState(ctx: OperatorContext, mv: ModelVersion, sameModel: ModelVersion[]): Promise<ImportState> {
  const { spec, status } = mv;
  const namespace = mv.metadata.namespace!;
  const imported = status?.conditions?.find((x) => x.type === 'Imported');
  const fromStatus = { artifact: status?.artifact, features: status?.features, signature: status?.signature, importJob: status?.importJob };
  if (isImported(mv)) return { imported: true, condition: t(imported!.reason, imported!.message), message: imported!.message, ...fromStatus };

  const parsed = ModelVersionSpec.safeParse(spec);
  if (!parsed.success) {
    const message = `spec is not valid: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`;
    return { imported: false, phase: 'Failed', condition: f('InvalidSpec', message), message };
  }
  const duplicate = duplicateOf(mv, sameModel);
  if (duplicate) {
    const message = `ModelVersion ${duplicate.metadata.name} already declares ${spec.model} version ${duplicate.spec.version}; versions are immutable, use a new version`;
    return { imported: false, phase: 'Failed', condition: f('DuplicateVersion', message), message };
  }
  const jobName = importJobName(mv.metadata.name, mv.metadata.uid!);
  const job = ctx.cache.importJobs.get(jobName, namespace);
  if (!job) {
    // A finished Job goes after its TTL; what it reported stays in the status.
    if (imported?.reason === 'ImportFailed' && status?.importJob === jobName)
      return { imported: false, phase: 'Failed', condition: f(imported.reason, imported.message), message: imported.message, importJob: jobName };
    if (spec.stage === 'Archived') {
      const message = 'archived before it was imported; set stage to Staging or Production to import it';
      return { imported: false, condition: f('NotImported', message), message };
    }
    const ref = spec.source.configMapRef;
    if (ref) {
      const missing = await missingSource(ctx, namespace, ref.name, ref.key);
      if (missing) return { imported: false, phase: 'Pending', condition: f('SourceNotFound', missing), message: missing, requeueAfterMs: SOURCE_RETRY_MS };
    }
    // The cache may not have seen a Job created a moment ago: ask before creating (and announcing) it.
    if (await jobExists(ctx, namespace, jobName)) {
      const message = `import Job ${jobName} starting`;
      return { imported: false, phase: 'Importing', condition: f('Importing', message), message, importJob: jobName };
    }
    await ctx.kube.apply(importJob(mv, ctx.config));
    const from = spec.source.url ?? spec.source.storePath ?? `ConfigMap ${ref!.name} key ${ref!.key}`;
    ctx.events.record(mv, 'Normal', 'ImportStarted', `import Job ${jobName} started for ${from}`);
    const message = `import Job ${jobName} created`;
    return { imported: false, phase: 'Importing', condition: f('Importing', message), message, importJob: jobName };
  }
  const outcome = importOutcome(job);
  if (outcome.state === 'running') {
    const pods = ctx.cache.importPods.list(namespace).filter((p: V1Pod) => p.metadata?.labels?.['batch.kubernetes.io/job-name'] === jobName);
    const trouble = importPodTrouble(pods);
    if (trouble) return { imported: false, phase: 'Importing', condition: f('ImportPodFailing', trouble), message: trouble, importJob: jobName };
    return { imported: false, phase: 'Importing', condition: f('Importing', outcome.message), message: outcome.message, importJob: jobName };
  }
  const report = await readImportReport(ctx.kube, namespace, jobName).catch((err: unknown) => {
    ctx.log.warn("could not read the import result from the Job's pods", { job: jobName, error: describeError(err) });
    return undefined;
  });
  const retry = 'fix the source, then delete and re-apply the ModelVersion to try again';
  if (outcome.state === 'failed') {
    const message = `${report?.error ?? outcome.message}; ${retry}`;
    return { imported: false, phase: 'Failed', condition: f('ImportFailed', message), message, importJob: jobName };
  }
  const result = report?.result;
  if (!result) {
    // Never the spec's claims in place of the import's: without its report nothing is known.
    const message = `import Job ${jobName} finished but its pod left no result in its termination message${report?.error ? ` (${report.error})` : ''}; ${retry}`;
    return { imported: false, phase: 'Failed', condition: f('ImportFailed', message), message, importJob: jobName };
  }
  const message = `stored ${result.path} (sha256 ${result.sha256.slice(0, 12)}…)`;
  return {
    imported: true,
    condition: t(result.alreadyPresent ? 'AlreadyInStore' : 'Imported', message),
    message,
    artifact: { path: result.path, sha256: result.sha256, sizeBytes: result.sizeBytes },
    features: result.features,
    ...(result.signature ? { signature: result.signature } : {}),
    importJob: jobName,
  };
}

async function jobExists(ctx: OperatorContext, namespace: string, name: string): Promise<boolean> {
  try {
    await ctx.kube.batch.readNamespacedJob({ name, namespace });
    return true;
  } catch (err) {
    if (isNotFound(err)) return false;
    throw err;
  }
}

/** Why a configMapRef source cannot be mounted yet, or undefined when it can. */
async function missingSource(ctx: OperatorContext, namespace: string, name: string, key: string): Promise<string | undefined> {
  let cm: V1ConfigMap;
  try {
    cm = await ctx.kube.core.readNamespacedConfigMap({ name, namespace });
  } catch (err) {
    if (isNotFound(err)) return `ConfigMap ${name} not found; create it with the ONNX file under key ${key}`;
    throw err;
  }
  if (cm.binaryData?.[key] === undefined && cm.data?.[key] === undefined)
    return `ConfigMap ${name} has no key ${key} (keys: ${[...Object.keys(cm.binaryData ?? {}), ...Object.keys(cm.data ?? {})].join(', ') || 'none'})`;
  return undefined;
}

type Observed = ObservedState & { requeueAfterMs?: number; event?: RolloutEvent };

/** Step 3: where an (imported or not) version stands for serving. Ready means serving. */
async function servingState(ctx: OperatorContext, mv: ModelVersion, sameModel: ModelVersion[], imp: ImportState, windows: RolloutWindows): Promise<Observed> {
  const { spec } = mv;
  const namespace = mv.metadata.namespace!;
  const base = { imported: imp.condition, artifact: imp.artifact, features: imp.features, signature: imp.signature, importJob: imp.importJob };
  const done = (phase: Phase, serving: ConditionState, message: string, extra: Partial<Observed> = {}): Observed => ({
    ...base,
    phase,
    message,
    serving,
    servingNow: serving.status === 'True',
    ready: { status: serving.status, reason: phase, message },
    weight: serving.status === 'True' ? 100 : 0,
    ...(serving.status === 'True' ? { url: `http://${ctx.config.SERVICE_NAME}.${namespace}.svc/api/v1/predict/${spec.model}` } : {}),
    ...extra,
  });

  if (spec.stage === 'Archived' && imp.phase !== 'Failed')
    return done('Archived', f('Archived', 'archived versions do not serve'), imp.imported ? 'archived' : imp.message);
  if (!imp.imported) return done(imp.phase ?? 'Pending', f('NotImported', 'not imported yet'), imp.message);
  if (spec.stage === 'Staging')
    return done('Imported', f('NotProduction', 'Staging versions do not serve; set stage: Production to serve this one'), 'imported; Staging');

  if (isRolledBack(mv)) {
    const message = `its rollout failed a check and it no longer takes traffic: ${mv.status?.rollout?.failedCheck}; change spec.rollout (or apply a new version) to try again`;
    return done('RolledBack', f('RolledBack', message), message);
  }
  // Production: does this version win, counting it as imported now?
  const plan = modelPlan(sameModel, (o) => (o.metadata.uid === mv.metadata.uid ? true : isImported(o)));
  const route = parseRouting(appliedRoutingText(ctx.cache.routing.get(ROUTING_CONFIGMAP, namespace)))?.models[spec.model];
  if (plan?.stable?.metadata.uid === mv.metadata.uid) return stableState(ctx, mv, plan!.serving, route, done);
  if (plan && plan.serving.metadata.uid !== mv.metadata.uid) {
    const serving = plan.serving;
    const message = `${spec.model} is served by the higher version ${serving.spec.version} (ModelVersion ${serving.metadata.name})${plan.stable ? `, rolling out against ${plan.stable.spec.version}` : ''}`;
    return done('Standby', f('Standby', message), message);
  }
  if (plan?.stable) {
    // This version rolls out against the stable one.
    const step = await windows.step(ctx, mv, plan.stable);
    const reason = step.rollout.phase === 'RolledBack' ? 'RolledBack' : 'RollingOut';
    return done(step.rollout.phase === 'RolledBack' ? 'RolledBack' : 'Progressing', f(reason, step.message), step.message, {
      rollout: step.rollout,
      weight: step.rollout.phase === 'Progressing' ? step.rollout.weight : 0,
      requeueAfterMs: step.requeueAfterMs,
      ...(step.event ? { event: step.event } : {}),
    });
  }
  const routed = route?.version === spec.version && route.canary === undefined;
  if (!routed) {
    const message = `waiting for ConfigMap ${ROUTING_CONFIGMAP} to route ${spec.model} to ${spec.version}`;
    return done('Progressing', f('RoutingPending', message), message);
  }
  const pods = ctx.servingPods.pods();
  const service = ctx.config.SERVICE_NAME;
  if (pods.length === 0) {
    const message = `routed; no ready pod of Service ${service} yet`;
    return done('Progressing', f('NoReadyPods', message), message);
  }
  const on = pods.filter((p) => p.models?.get(spec.model) === spec.version);
  if (on.length === pods.length)
    return done(
      'Serving',
      t('Serving', `every ready pod serves it (${on.length})`),
      `serving ${spec.model}@${spec.version} on ${on.length} of ${pods.length} ready pods`,
    );
  const silent = pods.filter((p) => p.error);
  const message = `routed; ${on.length} of ${pods.length} ready pods serve it${silent.length ? ` (${silent.map((p) => `${p.name}: ${p.error}`).join(', ')})` : ''}`;
  return done('Progressing', f('PodsLoading', message), message);
}

/** The stable version while a higher one rolls out: it serves what the canary does not take. */
function stableState(
  ctx: OperatorContext,
  mv: ModelVersion,
  canary: ModelVersion,
  route: ModelRoute | undefined,
  done: (phase: Phase, serving: ConditionState, message: string, extra?: Partial<Observed>) => Observed,
): Observed {
  const { model, version } = mv.spec;
  const canaryWeight = route?.canary?.mode === 'canary' ? route.canary.weight : 0;
  const rolling = `${canary.spec.version} rolls out against it${route?.canary?.mode === 'shadow' ? ' as a shadow' : ` (${canaryWeight} %)`}`;
  if (route?.version !== version) {
    const message = `waiting for ConfigMap ${ROUTING_CONFIGMAP} to route ${model} to ${version} while ${rolling}`;
    return done('Progressing', f('RoutingPending', message), message);
  }
  const pods = ctx.servingPods.pods();
  const on = pods.filter((p) => p.models?.get(model) === version);
  if (pods.length === 0 || on.length < pods.length) {
    const message = `routed; ${on.length} of ${pods.length} ready pods serve it while ${rolling}`;
    return done('Progressing', f('PodsLoading', message), message);
  }
  const message = `serving ${100 - canaryWeight} % of ${model}'s traffic on ${on.length} ready pods while ${rolling}`;
  return done('Serving', t('Serving', message), message, { weight: 100 - canaryWeight });
}

/** Step 4: an Event for each change a person would want to see in `kubectl describe`; failures also logged and counted. */
function recordTransition(ctx: OperatorContext, mv: ModelVersion, next: ModelVersionStatus): void {
  const before = mv.status;
  const was = before?.phase;
  const now = next.phase;
  const importedBefore = before?.conditions?.find((c) => c.type === 'Imported');
  const importedNow = next.conditions?.find((c) => c.type === 'Imported');
  const { model, version } = mv.spec;
  const name = `${mv.metadata.namespace}/${mv.metadata.name}`;
  if (importedNow?.status === 'True' && importedBefore?.status !== 'True') ctx.events.record(mv, 'Normal', 'Imported', importedNow.message);
  const reason = importedNow?.reason;
  if (reason && FAILURES.has(reason) && (reason !== importedBefore?.reason || importedNow?.message !== importedBefore?.message)) {
    ctx.events.record(mv, 'Warning', reason, importedNow!.message);
    ctx.log.warn('ModelVersion cannot import', { modelVersion: name, reason, message: importedNow!.message });
    ctx.metrics.modelVersionFailures.inc({ reason });
  }
  if (was === now) return;
  switch (now) {
    case 'Progressing':
      if (was !== 'Serving')
        ctx.events.record(
          mv,
          'Normal',
          was === 'Standby' ? 'RolledBack' : 'Promoted',
          `routing ${model} to version ${version}; the service pods load it in place`,
        );
      break;
    case 'Serving':
      ctx.events.record(mv, 'Normal', 'Serving', next.message ?? `serving ${model}@${version}`);
      ctx.log.info('serving', { modelVersion: name, message: next.message });
      break;
    case 'Standby':
      ctx.events.record(mv, 'Normal', 'Superseded', next.message ?? `${model} is served by a higher version`);
      break;
    case 'Archived':
      ctx.events.record(mv, 'Normal', 'Archived', `${model}@${version} archived`);
      break;
  }
}

/** Step 1 on deletion: release the finalizer once the routing no longer names this version. */
async function finalize(ctx: OperatorContext, mv: ModelVersion): Promise<Result | undefined> {
  if (!hasFinalizer(mv)) return;
  const namespace = mv.metadata.namespace!;
  const sameModel = ctx.cache.modelVersions.list(namespace).filter((o) => o.spec.model === mv.spec.model);
  const text = appliedRoutingText(ctx.cache.routing.get(ROUTING_CONFIGMAP, namespace));
  const named = parseRouting(text)?.models[mv.spec.model]?.version === mv.spec.version && !duplicateOf(mv, sameModel);
  if (named) return { requeueAfterMs: FINALIZE_RETRY_MS }; // the routing controller takes it out
  await removeFinalizer(ctx.kube, mv);
  ctx.events.record(mv, 'Normal', 'Released', `routing no longer names ${mv.spec.model}@${mv.spec.version}; deletion can proceed`);
  ctx.log.info('finalizer released', { modelVersion: `${namespace}/${mv.metadata.name}` });
}

/**
 * What wakes it: a ModelVersion's own changes, and all of its model's versions when one of them
 * changes what serves; its import Job and the Job's pod; the routing ConfigMap, and what the service
 * pods serve, for the versions that serve, are on their way to it, or are being deleted.
 */
export function setupModelVersionController(mgr: ControllerManager): Controller {
  const { cache, config } = mgr.ctx;
  const key = (mv: ModelVersion) => objectKey(mv.metadata.namespace!, mv.metadata.name);
  const sameModel = (mv: ModelVersion) =>
    cache.modelVersions
      .list(mv.metadata.namespace)
      .filter((o) => o.spec.model === mv.spec.model)
      .map(key);
  const routed = (o: { metadata?: { namespace?: string } }) =>
    cache.modelVersions
      .list(o.metadata?.namespace)
      .filter((mv) => mv.status?.phase === 'Progressing' || mv.status?.phase === 'Serving' || isDeleting(mv))
      .map(key);
  const owner = (o: { metadata?: { namespace?: string; labels?: Record<string, string> } }) => {
    const name = o.metadata?.labels?.[LABELS.modelVersion];
    return name && o.metadata?.namespace ? objectKey(o.metadata.namespace, name) : undefined;
  };
  const controller = mgr
    .controller('modelversion', config.WORKERS, modelVersionReconciler(mgr.ctx), () => cache.modelVersions.list(config.NAMESPACE).map(key))
    .watch(cache.modelVersions, (mv, old, event) => (event === 'update' && old && !servingInputsChanged(old, mv) ? key(mv) : sameModel(mv)))
    .watch(cache.importJobs, owner)
    .watch(cache.importPods, owner)
    .watch(cache.routing, routed);
  mgr.ctx.servingPods.onChange((models) => {
    for (const mv of cache.modelVersions.list(config.NAMESPACE)) {
      const affected = models === 'all' || models.has(mv.spec.model);
      if (affected && (mv.spec.stage === 'Production' || mv.status?.phase === 'Serving')) controller.enqueue(key(mv));
    }
  });
  return controller;
}
