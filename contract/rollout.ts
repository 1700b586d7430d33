import { z } from 'zod';

// Canary and shadow rollouts, once. A ModelVersion's spec.rollout and the standalone REST API's
// promote take the same RolloutSpec; the operator and the standalone service judge a step with the
// same analysis over the same figures, read from the service's own metrics (each pod's /metrics,
// or Prometheus): the new version's rows and errors, its latency histogram, the ground-truth
// feedback on its answers and, for a shadow, how often it agreed with the stable version.

const DURATION = /^([1-9][0-9]{0,5})(s|m|h)$/;
const DURATION_RULE = 'interval is a whole number of seconds, minutes or hours, such as 30s, 1m or 2h';

/** Milliseconds of a duration such as "30s", "1m", "2h". */
export function durationMs(text: string): number {
  const m = DURATION.exec(text);
  if (!m) throw new Error(DURATION_RULE);
  return Number(m[1]) * { s: 1_000, m: 60_000, h: 3_600_000 }[m[2] as 's' | 'm' | 'h'];
}

const STRATEGIES = ['Canary', 'Shadow'] as const;

const RolloutAnalysis = z
  .object({
    minRequests: z.int().min(1).max(1_000_000_000).default(100).describe('Answers of the new version a step needs before it is judged (its rows)'),
    maxErrorRate: z.number().min(0).max(1).default(0.01).describe("Largest share of the new version's answers that may fail (5xx)"),
    maxP99LatencyMs: z.number().positive().max(3_600_000).optional().describe("Largest 99th percentile of the new version's inference time, in milliseconds"),
    minAccuracy: z
      .number()
      .min(0)
      .max(1)
      .optional()
      .describe("Smallest share of the new version's answers the ground-truth feedback (POST /api/v1/feedback) confirms; judged once minFeedback have arrived"),
    minFeedback: z.int().min(1).max(1_000_000_000).default(20).describe('Feedback on the new version a step needs before minAccuracy is judged'),
    minAgreement: z
      .number()
      .min(0)
      .max(1)
      .optional()
      .describe('Shadow: smallest share of answers where the new version agrees with the stable one (same label; for regressors within maxAbsDifference)'),
    maxAbsDifference: z.number().min(0).default(0).describe("Shadow, regressors: the largest |new - stable| still counted as agreeing, in the target's units"),
  })
  .strict()
  .describe('When a step passes: the checks run on the new version’s answers during the step');

export const RolloutSpec = z
  .object({
    strategy: z
      .enum(STRATEGIES)
      .describe(
        "Canary: the new version takes a growing share of the model's traffic (steps); Shadow: it gets a copy of the traffic, only the stable version answers",
      ),
    steps: z
      .array(z.int().min(1).max(100))
      .min(1)
      .max(20)
      .default([5, 25, 50, 100])
      .describe("Canary: the percent of the model's traffic the new version takes at each step, increasing, ending at 100"),
    interval: z
      .string()
      .regex(DURATION, DURATION_RULE)
      .meta({ 'x-validation-message': DURATION_RULE })
      .default('1m')
      .describe('How long each step is watched before it is judged (30s, 1m, 2h); a failing check rolls back at once'),
    analysis: RolloutAnalysis.prefault({}),
  })
  .strict()
  .superRefine((r, ctx) => {
    if (r.strategy !== 'Canary') return;
    if (r.steps.some((s, i) => i > 0 && s <= r.steps[i - 1]!)) ctx.addIssue({ code: 'custom', path: ['steps'], message: STEPS_RULE });
    if (r.steps.at(-1) !== 100) ctx.addIssue({ code: 'custom', path: ['steps'], message: STEPS_RULE });
  })
  .describe('Roll this version out gradually against the version serving now, and roll it back on its own when a check fails. Absent: it serves at once');

export const STEPS_RULE = 'a Canary’s steps increase and end at 100 (e.g. [5, 25, 50, 100])';

export type RolloutSpec = z.output<typeof RolloutSpec>;
export type RolloutSpecInput = z.input<typeof RolloutSpec>;

/** What a step's answers showed: the new version's, and the stable version's beside it. */
export const RolloutFigures = z.object({
  requests: z.number().describe("The new version's answers (rows) during the step"),
  errors: z.number().describe('Of which failed'),
  errorRate: z.number().describe('errors / requests (0 without requests)'),
  p99LatencyMs: z.number().optional().describe('99th percentile of its inference time (from the histogram buckets)'),
  feedback: z.number().describe('Ground-truth feedback on its answers'),
  accuracy: z.number().optional().describe('Share of the feedback that confirmed its answer (classifiers)'),
  compared: z.number().optional().describe('Shadow: answers compared with the stable version'),
  agreement: z.number().optional().describe('Shadow: share of them that agreed'),
  meanAbsDifference: z.number().optional().describe('Shadow, regressors: mean |new - stable|'),
  stableErrorRate: z.number().optional().describe("The stable version's error rate over the same step"),
});
export type RolloutFigures = z.output<typeof RolloutFigures>;

const ROLLOUT_PHASES = ['Progressing', 'Shadowing', 'Succeeded', 'RolledBack'] as const;

export const RolloutStatus = z.object({
  observedGeneration: z.number().int().optional().describe('The metadata.generation this rollout is of (a change to the spec starts it again)'),
  phase: z.enum(ROLLOUT_PHASES).describe('Progressing (a canary), Shadowing, Succeeded or RolledBack'),
  strategy: z.enum(STRATEGIES),
  stable: z.string().describe('The version it is compared with, which keeps serving the rest of the traffic'),
  stepIndex: z.number().int().describe('The current step, from 0'),
  step: z.string().describe('The current step for a person: "2/4"'),
  weight: z.number().int().describe("Percent of the model's traffic it takes now (0 for a shadow, and once rolled back)"),
  stepStartedAt: z.string().describe('When the current step started'),
  figures: RolloutFigures.optional().describe('What the current (or the last) step showed'),
  failedCheck: z.string().optional().describe('Once rolled back: the check that failed, with the figures'),
  finishedAt: z.string().optional(),
});
export type RolloutStatus = z.output<typeof RolloutStatus>;

// ---- The split --------------------------------------------------------------------------------

/** FNV-1a, 32 bits: the same key lands on the same side on every pod and every restart. */
function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** Whether one request goes to the canary at `weight` percent: by its key (sticky) or at random. */
export function toCanary(model: string, weight: number, key: string | undefined): boolean {
  if (weight <= 0) return false;
  if (weight >= 100) return true;
  const bucket = key === undefined || key === '' ? Math.random() * 100 : fnv1a(`${model}\u0000${key}`) % 100;
  return bucket < weight;
}

// ---- The figures, from the service's metrics -------------------------------------------------

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The samples of a Prometheus text exposition (what /metrics answers). */
export function parseMetrics(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g))
      labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

/** A version's cumulative counters, as one pod (or the sum of the pods) reported them. */
export interface Counters {
  success: number;
  error: number;
  /** Inference-time histogram: upper bound (seconds) → cumulative count; and its total count. */
  latency: Map<number, number>;
  latencyCount: number;
  correct: number;
  incorrect: number;
  agree: number;
  disagree: number;
  absDiffSum: number;
  absDiffCount: number;
}

export const emptyCounters = (): Counters => ({
  success: 0,
  error: 0,
  latency: new Map(),
  latencyCount: 0,
  correct: 0,
  incorrect: 0,
  agree: 0,
  disagree: 0,
  absDiffSum: 0,
  absDiffCount: 0,
});

/** The metric names the figures come from (service/observability/metrics.ts). */
const ROLLOUT_METRICS = {
  predictions: 'model_predictions_total',
  latency: 'model_inference_duration_seconds',
  feedback: 'model_feedback_total',
  shadow: 'model_shadow_comparisons_total',
  shadowDifference: 'model_shadow_absolute_difference',
} as const;

/** model@version's counters in one pod's samples. */
export function countersOf(samples: readonly Sample[], model: string, version: string): Counters {
  const c = emptyCounters();
  for (const s of samples) {
    if (s.labels.model !== model || s.labels.version !== version) continue;
    switch (s.name) {
      case ROLLOUT_METRICS.predictions:
        if (s.labels.outcome === 'success') c.success += s.value;
        else if (s.labels.outcome === 'error') c.error += s.value;
        break;
      case `${ROLLOUT_METRICS.latency}_bucket`: {
        const le = s.labels.le === '+Inf' ? Number.POSITIVE_INFINITY : Number(s.labels.le);
        c.latency.set(le, (c.latency.get(le) ?? 0) + s.value);
        break;
      }
      case `${ROLLOUT_METRICS.latency}_count`:
        c.latencyCount += s.value;
        break;
      case ROLLOUT_METRICS.feedback:
        if (s.labels.outcome === 'correct') c.correct += s.value;
        else if (s.labels.outcome === 'incorrect') c.incorrect += s.value;
        break;
      case ROLLOUT_METRICS.shadow:
        if (s.labels.result === 'agree') c.agree += s.value;
        else if (s.labels.result === 'disagree') c.disagree += s.value;
        break;
      case `${ROLLOUT_METRICS.shadowDifference}_sum`:
        c.absDiffSum += s.value;
        break;
      case `${ROLLOUT_METRICS.shadowDifference}_count`:
        c.absDiffCount += s.value;
        break;
    }
  }
  return c;
}

function combine(a: Counters, b: Counters, sign: 1 | -1): Counters {
  const latency = new Map(a.latency);
  for (const [le, n] of b.latency) latency.set(le, (latency.get(le) ?? 0) + sign * n);
  return {
    success: a.success + sign * b.success,
    error: a.error + sign * b.error,
    latency,
    latencyCount: a.latencyCount + sign * b.latencyCount,
    correct: a.correct + sign * b.correct,
    incorrect: a.incorrect + sign * b.incorrect,
    agree: a.agree + sign * b.agree,
    disagree: a.disagree + sign * b.disagree,
    absDiffSum: a.absDiffSum + sign * b.absDiffSum,
    absDiffCount: a.absDiffCount + sign * b.absDiffCount,
  };
}

export const addCounters = (a: Counters, b: Counters): Counters => combine(a, b, 1);

/**
 * What happened between two readings of one pod: after - before, or all of `after` when a counter
 * went down (the pod restarted, or reloaded the version, and began again from 0).
 */
export function counterDelta(after: Counters, before: Counters | undefined): Counters {
  if (!before) return after;
  const d = combine(after, before, -1);
  const reset = [d.success, d.error, d.latencyCount, d.correct, d.incorrect, d.agree, d.disagree, d.absDiffCount].some((n) => n < 0);
  return reset ? after : d;
}

/** The q-quantile of a cumulative histogram, interpolated in its bucket as Prometheus' histogram_quantile does. */
export function histogramQuantile(q: number, buckets: Map<number, number>): number | undefined {
  const sorted = [...buckets].sort((a, b) => a[0] - b[0]);
  const total = sorted.at(-1)?.[1] ?? 0;
  if (total <= 0) return undefined;
  const rank = q * total;
  let prevBound = 0;
  let prevCount = 0;
  for (const [bound, count] of sorted) {
    if (count >= rank) {
      if (bound === Number.POSITIVE_INFINITY) return prevBound;
      if (count === prevCount) return bound;
      return prevBound + ((bound - prevBound) * (rank - prevCount)) / (count - prevCount);
    }
    prevBound = bound;
    prevCount = count;
  }
  return prevBound;
}

const round = (n: number, digits = 4) => Math.round(n * 10 ** digits) / 10 ** digits;

/** A step's figures from the new version's counters over the step (and the stable version's). */
export function figuresOf(canary: Counters, stable?: Counters): RolloutFigures {
  const requests = canary.success + canary.error;
  const feedback = canary.correct + canary.incorrect;
  const compared = canary.agree + canary.disagree;
  const p99 = histogramQuantile(0.99, canary.latency);
  const stableRequests = stable ? stable.success + stable.error : 0;
  return {
    requests,
    errors: canary.error,
    errorRate: requests > 0 ? round(canary.error / requests) : 0,
    ...(p99 !== undefined ? { p99LatencyMs: round(p99 * 1000, 3) } : {}),
    feedback,
    ...(feedback > 0 ? { accuracy: round(canary.correct / feedback) } : {}),
    ...(compared > 0 ? { compared, agreement: round(canary.agree / compared) } : {}),
    ...(canary.absDiffCount > 0 ? { meanAbsDifference: round(canary.absDiffSum / canary.absDiffCount, 6) } : {}),
    ...(stable && stableRequests > 0 ? { stableErrorRate: round(stable.error / stableRequests) } : {}),
  };
}

export type Verdict = { verdict: 'pass' } | { verdict: 'wait'; reason: string } | { verdict: 'fail'; check: string };

const pct = (n: number) => `${round(n * 100, 2)} %`;

/**
 * Judges a step. A failing check fails at once, as soon as minRequests answers are in (a bad
 * version is rolled back without waiting out the interval); the step passes once its interval is
 * over with every check holding; until then it waits.
 */
export function judge(spec: RolloutSpec, figures: RolloutFigures, intervalOver: boolean): Verdict {
  const a = spec.analysis;
  if (figures.requests < a.minRequests) return { verdict: 'wait', reason: `${figures.requests} of the ${a.minRequests} answers the step needs` };
  if (figures.errorRate > a.maxErrorRate)
    return {
      verdict: 'fail',
      check: `error rate ${pct(figures.errorRate)} (${figures.errors} of ${figures.requests}) is above maxErrorRate ${pct(a.maxErrorRate)}`,
    };
  if (a.maxP99LatencyMs !== undefined && figures.p99LatencyMs !== undefined && figures.p99LatencyMs > a.maxP99LatencyMs)
    return { verdict: 'fail', check: `p99 latency ${figures.p99LatencyMs} ms is above maxP99LatencyMs ${a.maxP99LatencyMs} ms` };
  if (a.minAccuracy !== undefined && figures.feedback >= a.minFeedback && figures.accuracy !== undefined && figures.accuracy < a.minAccuracy)
    return {
      verdict: 'fail',
      check: `accuracy ${pct(figures.accuracy)} from ${figures.feedback} feedback is below minAccuracy ${pct(a.minAccuracy)}`,
    };
  if (spec.strategy === 'Shadow' && a.minAgreement !== undefined && figures.agreement !== undefined && figures.agreement < a.minAgreement)
    return {
      verdict: 'fail',
      check: `agreement with the stable version ${pct(figures.agreement)} over ${figures.compared} answers is below minAgreement ${pct(a.minAgreement)}`,
    };
  if (!intervalOver) return { verdict: 'wait', reason: 'the step’s interval is not over' };
  if (a.minAccuracy !== undefined && figures.feedback < a.minFeedback)
    return { verdict: 'wait', reason: `${figures.feedback} of the ${a.minFeedback} feedback minAccuracy needs` };
  return { verdict: 'pass' };
}

// ---- The steps ---------------------------------------------------------------------------------

const stepText = (spec: RolloutSpec, i: number) => (spec.strategy === 'Shadow' ? `shadow ${i + 1}` : `${i + 1}/${spec.steps.length}`);

/** A rollout's first step against `stable`. */
export function startRollout(spec: RolloutSpec, stable: string, now: Date, generation?: number): RolloutStatus {
  const canary = spec.strategy === 'Canary';
  return {
    ...(generation !== undefined ? { observedGeneration: generation } : {}),
    phase: canary ? 'Progressing' : 'Shadowing',
    strategy: spec.strategy,
    stable,
    stepIndex: 0,
    step: stepText(spec, 0),
    weight: canary ? spec.steps[0]! : 0,
    stepStartedAt: now.toISOString(),
  };
}

export type RolloutEvent = { kind: 'advanced' | 'succeeded' | 'rolled_back'; message: string };

/**
 * What a step's verdict does: a pass moves a canary to its next step (at 100 % it has succeeded)
 * and starts a shadow's next window; a fail rolls back (weight 0, the check that failed kept); a
 * wait only records the figures.
 */
export function afterVerdict(
  spec: RolloutSpec,
  status: RolloutStatus,
  verdict: Verdict,
  figures: RolloutFigures,
  now: Date,
): { status: RolloutStatus; event?: RolloutEvent } {
  const at = now.toISOString();
  if (verdict.verdict === 'wait') return { status: { ...status, figures } };
  if (verdict.verdict === 'fail')
    return {
      status: { ...status, phase: 'RolledBack', weight: 0, figures, failedCheck: verdict.check, finishedAt: at },
      event: { kind: 'rolled_back', message: `rolled back at step ${status.step} (${status.weight} %): ${verdict.check}; ${status.stable} keeps serving` },
    };
  const next = status.stepIndex + 1;
  if (spec.strategy === 'Shadow') return { status: { ...status, figures, stepIndex: next, step: stepText(spec, next), stepStartedAt: at } };
  if (next >= spec.steps.length)
    return {
      status: { ...status, phase: 'Succeeded', weight: 100, figures, finishedAt: at },
      event: { kind: 'succeeded', message: `every step passed; it serves all the traffic (${describeFigures(figures)})` },
    };
  return {
    status: { ...status, figures, stepIndex: next, step: stepText(spec, next), weight: spec.steps[next]!, stepStartedAt: at },
    event: { kind: 'advanced', message: `step ${status.step} passed (${describeFigures(figures)}); step ${stepText(spec, next)}: ${spec.steps[next]} %` },
  };
}

/** The figures in a line: "140 answers, 0 errors, p99 3.1 ms, accuracy 96 % of 25". */
export function describeFigures(f: RolloutFigures): string {
  const parts = [`${f.requests} answers`, `${f.errors} errors`];
  if (f.p99LatencyMs !== undefined) parts.push(`p99 ${f.p99LatencyMs} ms`);
  if (f.accuracy !== undefined) parts.push(`accuracy ${pct(f.accuracy)} of ${f.feedback}`);
  if (f.agreement !== undefined) parts.push(`agreement ${pct(f.agreement)} of ${f.compared}`);
  return parts.join(', ');
}

/** Whether a step's interval has passed. */
export const intervalOver = (spec: RolloutSpec, status: RolloutStatus, now: Date) =>
  now.getTime() - Date.parse(status.stepStartedAt) >= durationMs(spec.interval);
