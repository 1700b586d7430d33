import type { ModelVersion } from '../../contract/model-version.ts';
import {
  addCounters,
  afterVerdict,
  counterDelta,
  describeFigures,
  durationMs,
  emptyCounters,
  figuresOf,
  judge,
  RolloutSpec,
  startRollout,
  type Counters,
  type RolloutEvent,
  type RolloutFigures,
  type RolloutStatus,
} from '../../contract/rollout.ts';
import type { OperatorContext } from '../context.ts';

// One step of a ModelVersion's rollout (spec.rollout) against the stable version. The step's
// share is in status.rollout.weight, which the routing controller writes into the routing; once
// every ready service pod routes it, the step's window opens: the operator reads each pod's
// counters of both versions (/metrics) at the window's start and every POLL_MS after, and judges
// the difference with the shared analysis (contract/rollout.ts). A pass moves to the next step, the
// last one to Succeeded (the version then serves alone); a failing check rolls back at once.
// The window's baseline lives in this process: a new leader opens the step's window again.

const POLL_MS = 2_000;

interface Window {
  /** The rollout generation and step this window is of. */
  generation: number;
  stepIndex: number;
  /** When every pod first routed the step; the interval counts from here. */
  since: number;
  /** Each pod's counters of the canary and the stable version at `since` (a pod first seen later counts from 0). */
  baseline: Map<string, Map<string, Counters>>;
  lastRead: number;
  figures?: RolloutFigures;
}

export interface RolloutOutcome {
  rollout: RolloutStatus;
  /** For the status: what it is doing, in a line. */
  message: string;
  requeueAfterMs: number;
  event?: RolloutEvent;
}

export class RolloutWindows {
  private readonly windows = new Map<string, Window>();

  forget(uid: string): void {
    this.windows.delete(uid);
  }

  /** The rollout of `mv` (the serving candidate) against `stable`, one step further if it is time. */
  async step(ctx: OperatorContext, mv: ModelVersion, stable: ModelVersion, now = new Date()): Promise<RolloutOutcome> {
    const spec = RolloutSpec.parse(mv.spec.rollout);
    const generation = mv.metadata.generation ?? 0;
    const uid = mv.metadata.uid!;
    const { model, version } = mv.spec;
    const previous = mv.status?.rollout;
    // A new rollout: none yet, a new spec, or a new stable version to compare with.
    if (!previous || previous.observedGeneration !== generation || previous.stable !== stable.spec.version || previous.phase === 'RolledBack') {
      this.windows.delete(uid);
      const rollout = startRollout(spec, stable.spec.version, now, generation);
      const what = spec.strategy === 'Shadow' ? 'a copy of the traffic' : `${rollout.weight} % of the traffic`;
      return {
        rollout,
        message: `rolling out against ${stable.spec.version}: step ${rollout.step}, ${what}`,
        requeueAfterMs: 500,
        event: { kind: 'advanced', message: `${spec.strategy} against ${stable.spec.version} started: step ${rollout.step}, ${what}` },
      };
    }
    const share = spec.strategy === 'Shadow' ? 'a copy of the traffic' : `${previous.weight} % of the traffic`;
    // Every ready pod routes this step?
    const pods = ctx.servingPods.pods();
    const mode = spec.strategy === 'Shadow' ? 'shadow' : 'canary';
    const live =
      pods.length > 0 &&
      pods.every((p) => {
        const c = p.canaries?.get(model);
        return p.models?.get(model) === stable.spec.version && c?.version === version && c.mode === mode && (mode === 'shadow' || c.weight === previous.weight);
      });
    let w = this.windows.get(uid);
    if (w && (w.generation !== generation || w.stepIndex !== previous.stepIndex)) w = undefined;
    if (!live) {
      if (w) this.windows.delete(uid);
      ctx.servingPods.hurry();
      return {
        rollout: previous,
        message: `step ${previous.step} (${share}): waiting for every ready pod of Service ${ctx.config.SERVICE_NAME} to route it`,
        requeueAfterMs: 1_000,
      };
    }
    const versions = [version, stable.spec.version];
    if (!w) {
      const readings = await ctx.servingPods.counters(model, versions);
      w = {
        generation,
        stepIndex: previous.stepIndex,
        since: now.getTime(),
        baseline: new Map(readings.map((r) => [r.pod, r.counters])),
        lastRead: now.getTime(),
      };
      this.windows.set(uid, w);
      const rollout = { ...previous, stepStartedAt: now.toISOString() };
      return { rollout, message: `step ${rollout.step} (${share}): watching since ${rollout.stepStartedAt}`, requeueAfterMs: POLL_MS };
    }
    const sinceRead = now.getTime() - w.lastRead;
    if (sinceRead < POLL_MS && w.figures) {
      // Woken early (our own status write): nothing new to read yet.
      return { rollout: { ...previous, figures: w.figures }, message: stepMessage(previous, share, w.figures), requeueAfterMs: POLL_MS - sinceRead };
    }
    const readings = await ctx.servingPods.counters(model, versions);
    let canary = emptyCounters();
    let stableCounters = emptyCounters();
    for (const r of readings) {
      const before = w.baseline.get(r.pod);
      canary = addCounters(canary, counterDelta(r.counters.get(version)!, before?.get(version)));
      stableCounters = addCounters(stableCounters, counterDelta(r.counters.get(stable.spec.version)!, before?.get(stable.spec.version)));
    }
    const figures = figuresOf(canary, stableCounters);
    w.lastRead = now.getTime();
    w.figures = figures;
    const over = now.getTime() - w.since >= durationMs(spec.interval);
    const verdict = judge(spec, figures, over);
    const next = afterVerdict(spec, previous, verdict, figures, now);
    if (next.event) this.windows.delete(uid);
    const message =
      next.status.phase === 'RolledBack'
        ? `rolled back: ${next.status.failedCheck}`
        : next.status.phase === 'Succeeded'
          ? `rollout succeeded (${describeFigures(figures)}); serving all the traffic once the pods route it`
          : next.status.stepIndex !== previous.stepIndex
            ? `step ${next.status.step}: ${spec.strategy === 'Shadow' ? 'a copy of the traffic' : `${next.status.weight} % of the traffic`}`
            : stepMessage(previous, share, figures, verdict.verdict === 'wait' ? verdict.reason : undefined);
    return { rollout: next.status, message, requeueAfterMs: next.event ? 500 : POLL_MS, ...(next.event ? { event: next.event } : {}) };
  }
}

function stepMessage(r: RolloutStatus, share: string, figures: RolloutFigures, waiting?: string): string {
  return `step ${r.step} (${share}): ${describeFigures(figures)}${waiting ? `; waiting: ${waiting}` : ''}`;
}
