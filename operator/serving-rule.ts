import { compareVersions } from '../contract/model-names.ts';
import type { ModelVersion } from '../contract/model-version.ts';
import type { RouteEntry, Routing } from '../contract/routing.ts';
import { modelFilePath } from '../contract/store-layout.ts';

// Which version serves each model (DESIGN.md): of a model's ModelVersions that are Production and
// imported, the one with the highest version in semantic-version order ("2" reads as 2.0.0). The
// spec alone decides: re-creating, restoring or re-ordering objects never changes what serves. The
// others stand by. Rollback is deleting or archiving the higher one. Pure functions of the
// informer cache: the routing controller and the ModelVersion controller reach the same answer.

export const isDeleting = (mv: ModelVersion) => !!mv.metadata.deletionTimestamp;

function condition(mv: ModelVersion, type: string) {
  return mv.status?.conditions?.find((c) => c.type === type);
}

export const isImported = (mv: ModelVersion) => condition(mv, 'Imported')?.status === 'True';

/** Its rollout (spec.rollout) failed a check, for this generation of its spec: it does not serve. */
export const isRolledBack = (mv: ModelVersion) => mv.status?.rollout?.phase === 'RolledBack' && mv.status.rollout.observedGeneration === mv.metadata.generation;

/** It still has to prove itself against the stable version: a rollout in its spec that has not succeeded. */
const rolloutPending = (mv: ModelVersion) => !!mv.spec.rollout && mv.status?.rollout?.phase !== 'Succeeded';

/** What in a ModelVersion changes which version serves its model, or the routing entry. */
export function servingInputsChanged(a: ModelVersion, b: ModelVersion): boolean {
  return (
    a.spec.stage !== b.spec.stage ||
    isImported(a) !== isImported(b) ||
    isDeleting(a) !== isDeleting(b) ||
    a.status?.artifact?.sha256 !== b.status?.artifact?.sha256 ||
    JSON.stringify(a.status?.features) !== JSON.stringify(b.status?.features) ||
    !!a.spec.rollout !== !!b.spec.rollout ||
    a.status?.rollout?.phase !== b.status?.rollout?.phase ||
    a.status?.rollout?.weight !== b.status?.rollout?.weight ||
    a.status?.rollout?.observedGeneration !== b.status?.rollout?.observedGeneration ||
    a.metadata.generation !== b.metadata.generation
  );
}

/** Older first: creationTimestamp, then name. */
function byAge(a: ModelVersion, b: ModelVersion): number {
  const ta = Date.parse(a.metadata.creationTimestamp ?? '') || 0;
  const tb = Date.parse(b.metadata.creationTimestamp ?? '') || 0;
  return ta - tb || (a.metadata.name < b.metadata.name ? -1 : a.metadata.name > b.metadata.name ? 1 : 0);
}

/** Lower versions first, in semantic-version order. */
export const byVersion = (a: ModelVersion, b: ModelVersion) => compareVersions(a.spec.version, b.spec.version) || byAge(a, b);

function groupByModel(mvs: readonly ModelVersion[]): Map<string, ModelVersion[]> {
  const out = new Map<string, ModelVersion[]>();
  for (const mv of mvs) {
    const list = out.get(mv.spec.model);
    if (list) list.push(mv);
    else out.set(mv.spec.model, [mv]);
  }
  return out;
}

/**
 * The older live ModelVersion declaring the same model and version ("1" and "1.0.0" are the same
 * version), if any: that one owns the version, this one is refused (two objects must not import
 * different bytes under one version).
 */
export function duplicateOf(mv: ModelVersion, sameModel: readonly ModelVersion[]): ModelVersion | undefined {
  return sameModel
    .filter((o) => o.metadata.name !== mv.metadata.name && compareVersions(o.spec.version, mv.spec.version) === 0 && !isDeleting(o))
    .sort(byAge)
    .find((o) => byAge(o, mv) < 0);
}

/**
 * The serving ModelVersion of one model. `imported` says whether a version counts as imported
 * (default: its Imported condition), so a reconcile can ask with the state it is about to write.
 */
export function servingVersion(sameModel: readonly ModelVersion[], imported: (mv: ModelVersion) => boolean = isImported): ModelVersion | undefined {
  return candidates(sameModel, imported).at(-1);
}

/** Production, imported, not deleting, not refused as a duplicate, not rolled back: lowest version first. */
function candidates(sameModel: readonly ModelVersion[], imported: (mv: ModelVersion) => boolean): ModelVersion[] {
  return sameModel
    .filter((mv) => !isDeleting(mv) && mv.spec.stage === 'Production' && imported(mv) && !isRolledBack(mv) && !duplicateOf(mv, sameModel))
    .sort(byVersion);
}

/**
 * What serves one model: the serving version (the highest candidate) and, while it rolls out, the
 * stable version it is compared with: the highest candidate below it that has nothing left to
 * prove. The stable one serves the traffic the canary does not take. A rollout with no stable
 * version to compare with (a model's first version) serves at once.
 */
export interface ModelPlan {
  serving: ModelVersion;
  stable?: ModelVersion;
}

export function modelPlan(sameModel: readonly ModelVersion[], imported: (mv: ModelVersion) => boolean = isImported): ModelPlan | undefined {
  const list = candidates(sameModel, imported);
  const serving = list.at(-1);
  if (!serving) return undefined;
  if (!rolloutPending(serving)) return { serving };
  const stable = list.slice(0, -1).findLast((mv) => !rolloutPending(mv));
  return stable ? { serving, stable } : { serving };
}

function routeEntry(mv: ModelVersion): RouteEntry {
  const sha256 = mv.status?.artifact?.sha256 ?? mv.spec.sha256;
  return {
    version: mv.spec.version,
    ...(sha256 ? { sha256 } : {}),
    path: modelFilePath(mv.spec.model, mv.spec.version),
    features: mv.status?.features ?? mv.spec.features ?? [],
  };
}

/** The routing every model should have, from all ModelVersions of the namespace. */
export function desiredRouting(mvs: readonly ModelVersion[]): Routing {
  const models: Routing['models'] = {};
  const groups = groupByModel(mvs);
  for (const model of [...groups.keys()].sort()) {
    const plan = modelPlan(groups.get(model)!);
    if (!plan) continue;
    if (!plan.stable) {
      models[model] = routeEntry(plan.serving);
      continue;
    }
    // A rollout: the stable version serves, the new one takes its step's share (or a copy).
    const { rollout } = plan.serving.spec;
    const own = plan.serving.status?.rollout;
    const current = own?.observedGeneration === plan.serving.metadata.generation ? own : undefined;
    const shadow = rollout!.strategy === 'Shadow';
    models[model] = {
      ...routeEntry(plan.stable),
      canary: {
        ...routeEntry(plan.serving),
        weight: shadow ? 0 : (current?.weight ?? 0),
        mode: shadow ? 'shadow' : 'canary',
        ...(shadow ? { maxAbsDifference: rollout!.analysis.maxAbsDifference } : {}),
      },
    };
  }
  return { models };
}
