import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  afterVerdict,
  countersOf,
  counterDelta,
  durationMs,
  figuresOf,
  histogramQuantile,
  judge,
  parseMetrics,
  RolloutSpec,
  startRollout,
  toCanary,
} from './rollout.ts';

const spec = RolloutSpec.parse({
  strategy: 'Canary',
  steps: [10, 50, 100],
  interval: '30s',
  analysis: { minRequests: 50, maxP99LatencyMs: 20, minAccuracy: 0.9 },
});

const metrics = (success: number, error: number, fast: number, correct = 0, incorrect = 0) => `
# HELP model_predictions_total x
model_predictions_total{model="iris",version="2",outcome="success"} ${success}
model_predictions_total{model="iris",version="2",outcome="error"} ${error}
model_predictions_total{model="iris",version="1",outcome="success"} 1000
model_predictions_total{model="iris-2",version="2",outcome="error"} 999
model_inference_duration_seconds_bucket{le="0.01",model="iris",version="2"} ${fast}
model_inference_duration_seconds_bucket{le="0.05",model="iris",version="2"} ${success + error}
model_inference_duration_seconds_bucket{le="+Inf",model="iris",version="2"} ${success + error}
model_inference_duration_seconds_count{model="iris",version="2"} ${success + error}
model_feedback_total{model="iris",version="2",outcome="correct"} ${correct}
model_feedback_total{model="iris",version="2",outcome="incorrect"} ${incorrect}
`;

test('the spec: defaults, durations, and steps that increase to 100', () => {
  const d = RolloutSpec.parse({ strategy: 'Canary' });
  assert.deepEqual(d.steps, [5, 25, 50, 100]);
  assert.equal(d.interval, '1m');
  assert.equal(d.analysis.minRequests, 100);
  assert.equal(durationMs('30s'), 30_000);
  assert.equal(durationMs('2h'), 7_200_000);
  assert.throws(() => durationMs('1.5m'), /whole number/);
  for (const steps of [
    [50, 20, 100],
    [10, 50],
    [10, 10, 100],
  ])
    assert.match(JSON.stringify(RolloutSpec.safeParse({ strategy: 'Canary', steps }).error?.issues), /increase and end at 100/);
  assert.ok(RolloutSpec.safeParse({ strategy: 'Shadow', steps: [5] }).success, "a shadow's steps do not matter");
});

test('figures from two readings of /metrics: only this model@version, the delta, p99 from the buckets', () => {
  const before = countersOf(parseMetrics(metrics(100, 0, 100)), 'iris', '2');
  const after = countersOf(parseMetrics(metrics(190, 10, 150, 18, 2)), 'iris', '2');
  const f = figuresOf(counterDelta(after, before));
  assert.equal(f.requests, 100);
  assert.equal(f.errors, 10);
  assert.equal(f.errorRate, 0.1);
  assert.equal(f.feedback, 20);
  assert.equal(f.accuracy, 0.9);
  // 50 of 100 under 10 ms, all under 50 ms: p99 interpolated in the 10–50 ms bucket.
  assert.equal(f.p99LatencyMs, 49.2);
  // A pod that restarted (counters went down) counts from zero.
  assert.equal(counterDelta(before, after).success, before.success);
});

test('histogram_quantile as Prometheus computes it', () => {
  const b = new Map([
    [0.1, 50],
    [0.2, 100],
    [Number.POSITIVE_INFINITY, 100],
  ]);
  assert.equal(histogramQuantile(0.5, b), 0.1);
  assert.ok(Math.abs(histogramQuantile(0.75, b)! - 0.15) < 1e-12);
  assert.equal(histogramQuantile(0.5, new Map()), undefined);
});

test('judge: wait for minRequests, fail at once on a check, pass once the interval is over', () => {
  const ok = { requests: 60, errors: 0, errorRate: 0, p99LatencyMs: 5, feedback: 30, accuracy: 0.95 };
  assert.equal(judge(spec, { ...ok, requests: 40 }, true).verdict, 'wait');
  assert.deepEqual(judge(spec, ok, false), { verdict: 'wait', reason: 'the step’s interval is not over' });
  assert.deepEqual(judge(spec, ok, true), { verdict: 'pass' });
  assert.match((judge(spec, { ...ok, errors: 3, errorRate: 0.05 }, false) as { check: string }).check, /error rate 5 % \(3 of 60\) is above maxErrorRate 1 %/);
  assert.match((judge(spec, { ...ok, p99LatencyMs: 25 }, false) as { check: string }).check, /p99 latency 25 ms is above maxP99LatencyMs 20 ms/);
  assert.match((judge(spec, { ...ok, accuracy: 0.5 }, false) as { check: string }).check, /accuracy 50 % from 30 feedback is below minAccuracy 90 %/);
  // Too little feedback: accuracy is not judged, and the step waits for it at its end.
  assert.equal(judge(spec, { ...ok, feedback: 5, accuracy: 0 }, false).verdict, 'wait');
  assert.match((judge(spec, { ...ok, feedback: 5, accuracy: 0 }, true) as { reason: string }).reason, /5 of the 20 feedback/);
});

test('the steps: 10 → 50 → 100 → Succeeded; a failure rolls back with the check', () => {
  const now = new Date('2026-12-01T00:00:00Z');
  let s = startRollout(spec, '1', now, 3);
  assert.deepEqual([s.phase, s.step, s.weight, s.observedGeneration], ['Progressing', '1/3', 10, 3]);
  const figures = { requests: 60, errors: 0, errorRate: 0, feedback: 0 };
  const seen: string[] = [];
  for (let i = 0; i < 3; i++) {
    const next = afterVerdict(spec, s, { verdict: 'pass' }, figures, now);
    s = next.status;
    seen.push(`${next.event?.kind} ${s.step} ${s.weight} ${s.phase}`);
  }
  assert.deepEqual(seen, ['advanced 2/3 50 Progressing', 'advanced 3/3 100 Progressing', 'succeeded 3/3 100 Succeeded']);
  const failed = afterVerdict(spec, startRollout(spec, '1', now), { verdict: 'fail', check: 'error rate 9 %' }, figures, now);
  assert.deepEqual(
    [failed.status.phase, failed.status.weight, failed.status.failedCheck, failed.event?.kind],
    ['RolledBack', 0, 'error rate 9 %', 'rolled_back'],
  );
  assert.match(failed.event!.message, /rolled back at step 1\/3 \(10 %\): error rate 9 %; 1 keeps serving/);
});

test('the split: a key stays on one side, on every pod; without one the share is random', () => {
  for (let k = 0; k < 200; k++) assert.equal(toCanary('iris', 30, `user-${k}`), toCanary('iris', 30, `user-${k}`));
  const keyed = Array.from({ length: 10_000 }, (_, k) => toCanary('iris', 30, `user-${k}`)).filter(Boolean).length;
  assert.ok(keyed > 2700 && keyed < 3300, `${keyed} of 10,000 keys at 30 %`);
  const random = Array.from({ length: 10_000 }, () => toCanary('iris', 30, undefined)).filter(Boolean).length;
  assert.ok(random > 2700 && random < 3300, `${random} of 10,000 at 30 %`);
  assert.equal(toCanary('iris', 0, 'x'), false);
  assert.equal(toCanary('iris', 100, 'x'), true);
});
