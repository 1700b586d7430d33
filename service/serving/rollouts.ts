import type { FastifyBaseLogger } from 'fastify';
import {
  afterVerdict,
  countersOf,
  counterDelta,
  figuresOf,
  intervalOver,
  judge,
  parseMetrics,
  startRollout,
  type Counters,
  type RolloutSpec,
  type RolloutStatus,
} from '../../contract/rollout.ts';
import { ServiceError } from '../errors.ts';
import type { ServiceMetrics } from '../observability/metrics.ts';
import type { ModelRegistry } from './model-registry.ts';

// Standalone rollouts (no operator): a canary or shadow of a stored version against the
// production one, stepped by this process with the same analysis the operator runs
// (contract/rollout.ts), over this process's own metrics. Success promotes the version; a failing
// check ends the canary and the production version keeps serving. A rollout lives in memory: a
// restart ends it with the production version unchanged (the history says it started).

const POLL_MS = 1_000;

interface Run {
  version: string;
  spec: RolloutSpec;
  status: RolloutStatus;
  baseline: { canary: Counters; stable: Counters };
  timer?: NodeJS.Timeout;
}

export class Rollouts {
  private readonly registry: ModelRegistry;
  private readonly metrics: ServiceMetrics;
  private readonly log: FastifyBaseLogger;
  private readonly pollMs: number;
  private readonly runs = new Map<string, Run>();
  /** The last finished rollout of each model, for GET. */
  private readonly finished = new Map<string, { version: string; status: RolloutStatus }>();

  constructor(deps: { registry: ModelRegistry; metrics: ServiceMetrics; log: FastifyBaseLogger; pollMs?: number }) {
    this.registry = deps.registry;
    this.metrics = deps.metrics;
    this.log = deps.log.child({ component: 'rollouts' });
    this.pollMs = deps.pollMs ?? POLL_MS;
  }

  /** Starts rolling `version` out against the production version. */
  async start(name: string, version: string, spec: RolloutSpec): Promise<{ version: string; status: RolloutStatus }> {
    if (this.runs.has(name))
      throw new ServiceError(
        'ROLLOUT_IN_PROGRESS',
        `model ${name} is rolling out version ${this.runs.get(name)!.version}; wait for it or abort it (DELETE /api/v1/models/${name}/rollout)`,
      );
    const stable = this.registry.productionOf(name);
    if (stable === undefined)
      throw new ServiceError('MODEL_NOT_FOUND', `model ${name} has no production version to roll ${version} out against; promote it instead`);
    if (stable === version) throw new ServiceError('VALIDATION_FAILED', `${name}@${version} already serves; a rollout needs another version`);
    const status = startRollout(spec, stable, new Date());
    await this.registry.setCanary(name, this.route(version, spec, status));
    const canary = this.registry.canaryOf(name);
    if (canary?.version !== version) throw new ServiceError('MODEL_NOT_LOADED', `${name}@${version} could not be loaded for the rollout`);
    const run: Run = { version, spec, status, baseline: await this.readings(name, version, stable) };
    this.runs.set(name, run);
    this.finished.delete(name);
    await this.registry.recordRollout(name, 'rollout_started', version, `${spec.strategy} against ${stable}`);
    this.log.info({ model: name, version, stable, strategy: spec.strategy, step: status.step, weight: status.weight }, 'rollout started');
    this.schedule(name, run);
    return { version, status };
  }

  /** The running rollout of a model, else its last finished one. */
  get(name: string): { version: string; status: RolloutStatus } | undefined {
    const run = this.runs.get(name);
    return run ? { version: run.version, status: run.status } : this.finished.get(name);
  }

  /** Ends a running rollout by hand: the canary stops, the production version keeps serving. */
  async abort(name: string): Promise<{ version: string; status: RolloutStatus }> {
    const run = this.runs.get(name);
    if (!run) throw new ServiceError('ROLLOUT_NOT_FOUND', `model ${name} has no rollout running`);
    const status: RolloutStatus = { ...run.status, phase: 'RolledBack', weight: 0, failedCheck: 'aborted by hand', finishedAt: new Date().toISOString() };
    await this.finish(name, run, status, 'aborted');
    return { version: run.version, status };
  }

  close(): void {
    for (const run of this.runs.values()) clearTimeout(run.timer);
    this.runs.clear();
  }

  private route(version: string, spec: RolloutSpec, status: RolloutStatus) {
    if (spec.strategy === 'Shadow') return { version, weight: 0, mode: 'shadow' as const, maxAbsDifference: spec.analysis.maxAbsDifference };
    return { version, weight: status.weight, mode: 'canary' as const };
  }

  private async readings(name: string, version: string, stable: string): Promise<{ canary: Counters; stable: Counters }> {
    const samples = parseMetrics(await this.metrics.registry.metrics());
    return { canary: countersOf(samples, name, version), stable: countersOf(samples, name, stable) };
  }

  private schedule(name: string, run: Run): void {
    run.timer = setTimeout(() => {
      this.tick(name, run).catch((err: Error) => {
        this.log.error({ model: name, err: err.message }, 'rollout step failed; trying again');
        if (this.runs.get(name) === run) this.schedule(name, run);
      });
    }, this.pollMs);
    run.timer.unref();
  }

  private async tick(name: string, run: Run): Promise<void> {
    if (this.runs.get(name) !== run) return;
    const now = new Date();
    const reading = await this.readings(name, run.version, run.status.stable);
    const figures = figuresOf(counterDelta(reading.canary, run.baseline.canary), counterDelta(reading.stable, run.baseline.stable));
    const verdict = judge(run.spec, figures, intervalOver(run.spec, run.status, now));
    const { status, event } = afterVerdict(run.spec, run.status, verdict, figures, now);
    if (status.phase === 'Succeeded') return this.finish(name, run, status, 'succeeded', event?.message);
    if (status.phase === 'RolledBack') return this.finish(name, run, status, 'rolled_back', event?.message);
    if (status.stepIndex !== run.status.stepIndex) {
      await this.registry.setCanary(name, this.route(run.version, run.spec, status));
      run.baseline = reading;
      this.log.info({ model: name, version: run.version, step: status.step, weight: status.weight }, event?.message ?? 'next step');
    }
    run.status = status;
    this.schedule(name, run);
  }

  private async finish(name: string, run: Run, status: RolloutStatus, result: 'succeeded' | 'rolled_back' | 'aborted', message?: string): Promise<void> {
    clearTimeout(run.timer);
    this.runs.delete(name);
    run.status = status;
    if (result === 'succeeded') await this.registry.promote(name, run.version);
    await this.registry.setCanary(name, undefined);
    if (result !== 'succeeded') await this.registry.recordRollout(name, 'rollout_rolled_back', run.version, status.failedCheck ?? result);
    this.finished.set(name, { version: run.version, status });
    this.metrics.rollouts.inc({ model: name, version: run.version, result });
    if (result === 'succeeded') this.log.info({ model: name, version: run.version }, message ?? 'rollout succeeded');
    else this.log.warn({ model: name, version: run.version, check: status.failedCheck }, message ?? 'rollout rolled back');
  }
}
