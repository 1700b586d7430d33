import { isDeepStrictEqual } from 'node:util';
import type { Artifact, Condition, ConditionType, ModelVersion, ModelVersionStatus, Phase } from '../../contract/model-version.ts';
import type { RolloutStatus } from '../../contract/rollout.ts';

// A ModelVersion's status from what the reconcile observed: the phase and the three conditions
// (Imported, Serving, Ready; metav1.Condition shape). A condition keeps its lastTransitionTime while
// its status stays the same, and the whole status compares equal when nothing changed, so a
// reconcile with nothing new writes nothing.

export interface ConditionState {
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
}

export interface ObservedState {
  phase: Phase;
  message: string;
  imported: ConditionState;
  serving: ConditionState;
  ready: ConditionState;
  artifact?: Artifact;
  features?: string[];
  signature?: Record<string, unknown>;
  importJob?: string;
  /** True when this version serves: servingSince is kept from before, or set now. */
  servingNow: boolean;
  /** Where to send predictions while it serves. */
  url?: string;
  /** Percent of the model's traffic it answers. */
  weight?: number;
  /** Its rollout, when it has one running (a finished one is kept from before). */
  rollout?: RolloutStatus;
}

export function desiredStatus(mv: ModelVersion, observed: ObservedState, now = new Date()): ModelVersionStatus {
  const generation = mv.metadata.generation ?? 0;
  const previous = mv.status ?? {};
  const condition = (type: ConditionType, state: ConditionState): Condition => {
    const old = previous.conditions?.find((c) => c.type === type);
    return {
      type,
      status: state.status,
      observedGeneration: generation,
      lastTransitionTime: old && old.status === state.status ? old.lastTransitionTime : now.toISOString().replace(/\.\d{3}Z$/, 'Z'),
      reason: state.reason,
      message: state.message,
    };
  };
  const status: ModelVersionStatus = {
    observedGeneration: generation,
    phase: observed.phase,
    conditions: [condition('Imported', observed.imported), condition('Serving', observed.serving), condition('Ready', observed.ready)],
    message: observed.message,
  };
  if (observed.artifact) status.artifact = observed.artifact;
  if (observed.features) status.features = observed.features;
  if (observed.signature) status.signature = observed.signature;
  if (observed.importJob) status.importJob = observed.importJob;
  if (observed.servingNow) status.servingSince = previous.servingSince ?? now.toISOString().replace(/\.\d{3}Z$/, 'Z');
  if (observed.url) status.url = observed.url;
  if (observed.weight !== undefined) status.weight = observed.weight;
  const rollout = observed.rollout ?? previous.rollout;
  if (rollout) status.rollout = rollout;
  return status;
}

/** Equal apart from key order: nothing to write. */
export function sameStatus(a: ModelVersionStatus | undefined, b: ModelVersionStatus): boolean {
  return isDeepStrictEqual(normalise(a ?? {}), normalise(b));
}

function normalise(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(normalise);
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(value).sort()) {
      const v = (value as Record<string, unknown>)[k];
      if (v !== undefined) out[k] = normalise(v);
    }
    return out;
  }
  return value;
}
