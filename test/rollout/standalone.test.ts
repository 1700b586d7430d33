import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { waitFor } from '../helpers/processes.ts';
import { startService, type TestService } from '../helpers/service.ts';
import { FAST_CANARY, IRIS_FEATURES, irisTruth, rolloutModelBytes, traffic, type RolloutModel } from './helpers.ts';

// Standalone rollouts (make run: no operator), through the REST API: a canary on promote (or on
// upload) splits each request by the step's weight, the service judges each step over its own
// metrics with the operator's analysis, and promotes the version at the end or rolls it back on
// its own. Bounded load in-process (app.inject), with ground-truth feedback from iris' true labels.

async function upload(svc: TestService, version: string, model: RolloutModel, extra: Record<string, unknown> = {}) {
  const res = await svc.app.inject({
    method: 'POST',
    url: '/api/v1/models',
    payload: { name: 'iris', version, model_data: (await rolloutModelBytes(model)).toString('base64'), features: IRIS_FEATURES, ...extra },
  });
  assert.ok(res.statusCode === 201, `${model}: ${res.statusCode} ${res.body}`);
}

const send = (svc: TestService) => async (url: string, payload: unknown, headers: Record<string, string>) => {
  const res = await svc.app.inject({ method: 'POST', url, payload: payload as object, headers });
  return { status: res.statusCode, body: res.body };
};

async function rollout(svc: TestService) {
  const res = await svc.app.inject({ url: '/api/v1/models/iris/rollout' });
  assert.equal(res.statusCode, 200, res.body);
  return res.json() as { version: string; rollout: { phase: string; step: string; weight: number; failedCheck?: string; figures?: Record<string, number> } };
}

async function production(svc: TestService): Promise<string> {
  return (await svc.app.inject({ url: '/api/v1/models/iris' })).json().production_version;
}

describe('standalone rollouts through the REST API', () => {
  test('a canary of a good version walks its steps to 100 % with 0 failed requests, and is promoted', { timeout: 60_000 }, async () => {
    const svc = await startService();
    try {
      await upload(svc, '1', 'iris-logreg');
      await upload(svc, '2', 'iris-mlp');
      const rows = await irisTruth();
      const load = traffic(send(svc), rows, { model: 'iris', feedback: true });
      const started = await svc.app.inject({ method: 'POST', url: '/api/v1/models/iris/versions/2/promote', payload: { rollout: FAST_CANARY } });
      assert.equal(started.statusCode, 202, started.body);
      assert.deepEqual([started.json().rollout.step, started.json().rollout.weight], ['1/3', 20]);
      // /health shows the canary and its share; the metrics say which version takes what.
      const health = (await svc.app.inject({ url: '/health' })).json();
      assert.deepEqual(health.models[0].canary, { version: '2', weight: 20, mode: 'canary', loaded: true });
      assert.match((await svc.app.inject({ url: '/metrics' })).body, /^model_traffic_weight\{model="iris",version="2"\} 20$/m);
      const steps = new Set<string>();
      const t0 = performance.now();
      await waitFor(
        'the rollout to succeed',
        async () => {
          const r = await rollout(svc);
          steps.add(`${r.rollout.step}@${r.rollout.weight}`);
          if (r.rollout.phase === 'RolledBack') throw new Error(`rolled back: ${r.rollout.failedCheck}`);
          return r.rollout.phase === 'Succeeded' && r;
        },
        40_000,
        200,
      );
      process.stderr.write(`# standalone canary 20→50→100 % (2 s steps): succeeded in ${Math.round(performance.now() - t0)} ms\n`);
      await load.stop();
      assert.ok(steps.has('1/3@20') && steps.has('2/3@50'), `steps seen: ${[...steps].join(', ')}`);
      assert.deepEqual(load.failures, [], 'no request failed');
      assert.ok((load.byVersion.get('1') ?? 0) > 30 && (load.byVersion.get('2') ?? 0) > 30, JSON.stringify([...load.byVersion]));
      assert.equal(await production(svc), '2');
      // Every answer is version 2 now; the history tells the story.
      const after = await svc.app.inject({ method: 'POST', url: '/api/v1/predict/iris', payload: { features: rows[0]!.features } });
      assert.equal(after.json().model_version, '2');
      const events = (await svc.app.inject({ url: '/api/v1/models/iris' }))
        .json()
        .history.map((e: { event: string; version: string }) => `${e.event} ${e.version}`);
      assert.deepEqual(events.slice(-2), ['rollout_started 2', 'promoted 2']);
      assert.match((await svc.app.inject({ url: '/metrics' })).body, /^model_rollouts_total\{model="iris",version="2",result="succeeded"\} 1$/m);
    } finally {
      await svc.close();
    }
  });

  for (const [bad, check] of [
    ['iris-fails-on-long-sepals', /error rate .* is above maxErrorRate 5 %/],
    ['iris-wrong-labels', /accuracy .* from \d+ feedback is below minAccuracy 80 %/],
  ] as const) {
    test(`a canary of ${bad} is rolled back on its own within its first step; the stable version never fails`, { timeout: 60_000 }, async () => {
      const svc = await startService();
      try {
        await upload(svc, '1', 'iris-logreg');
        const rows = await irisTruth();
        const load = traffic(send(svc), rows, { model: 'iris', feedback: true });
        // A canary on upload: the new version is stored and rolled out in one call.
        await upload(svc, '2', bad, { rollout: { ...FAST_CANARY, interval: '30s' } });
        const t0 = performance.now();
        const r = await waitFor(
          'the rollback',
          async () => {
            const now = await rollout(svc);
            return now.rollout.phase === 'RolledBack' && now;
          },
          25_000,
          100,
        );
        const ms = Math.round(performance.now() - t0);
        process.stderr.write(`# standalone canary of ${bad}: rolled back ${ms} ms after it started (interval 30 s): ${r.rollout.failedCheck}\n`);
        assert.match(r.rollout.failedCheck!, check);
        assert.ok(ms < 30_000, 'within the first step');
        // The stable version keeps serving, alone; nothing the stable version answered failed.
        const afterRollback = load.sent;
        await new Promise((resolve) => setTimeout(resolve, 300));
        await load.stop();
        assert.ok(load.sent > afterRollback, 'traffic went on after the rollback');
        assert.deepEqual(
          load.failures.filter((f) => f.version !== '2'),
          [],
          'only the canary failed',
        );
        assert.equal(await production(svc), '1');
        assert.equal((await svc.app.inject({ url: '/health' })).json().models[0].canary, undefined);
        const answers = await Promise.all(
          rows.map((row) => svc.app.inject({ method: 'POST', url: '/api/v1/predict/iris', payload: { features: row.features } })),
        );
        assert.ok(answers.every((a) => a.statusCode === 200 && a.json().model_version === '1'));
        const history = (await svc.app.inject({ url: '/api/v1/models/iris' })).json().history;
        assert.equal(history.at(-1).event, 'rollout_rolled_back');
        assert.match(history.at(-1).detail, check);
        // Pinned requests to the rolled back version still work: it stays stored.
        const pinned = await svc.app.inject({ method: 'POST', url: '/api/v1/predict/iris@2', payload: { features: rows[0]!.features } });
        assert.equal(pinned.statusCode, 200, pinned.body);
        assert.equal(pinned.json().model_version, '2');
      } finally {
        await svc.close();
      }
    });
  }

  test('the same canary key always lands on the same version; pinned versions keep working', { timeout: 30_000 }, async () => {
    const svc = await startService();
    try {
      await upload(svc, '1', 'iris-logreg');
      await upload(svc, '2', 'iris-mlp');
      const r = await svc.app.inject({
        method: 'POST',
        url: '/api/v1/models/iris/versions/2/promote',
        payload: { rollout: { strategy: 'Canary', steps: [50, 100], interval: '1h' } },
      });
      assert.equal(r.statusCode, 202, r.body);
      const row = (await irisTruth())[0]!.features;
      const ask = (key: string) =>
        svc.app
          .inject({ method: 'POST', url: '/api/v1/predict/iris', payload: { features: row }, headers: { 'x-canary-key': key } })
          .then((a) => a.json().model_version as string);
      const sides = new Map<string, Set<string>>();
      for (let k = 0; k < 40; k++)
        for (let i = 0; i < 3; i++) (sides.get(`user-${k}`) ?? sides.set(`user-${k}`, new Set()).get(`user-${k}`)!).add(await ask(`user-${k}`));
      assert.ok(
        [...sides.values()].every((s) => s.size === 1),
        'one version per key',
      );
      const twos = [...sides.values()].filter((s) => s.has('2')).length;
      assert.ok(twos > 8 && twos < 32, `${twos} of 40 keys on the canary at 50 %`);
      for (const v of ['1', '2']) {
        const pinned = await svc.app.inject({ method: 'POST', url: `/api/v1/predict/iris@${v}`, payload: { features: row } });
        assert.equal(pinned.json().model_version, v);
      }
      // A second rollout while one runs is refused; an abort ends it and version 1 serves alone.
      const again = await svc.app.inject({ method: 'POST', url: '/api/v1/models/iris/versions/2/promote', payload: { rollout: FAST_CANARY } });
      assert.equal(again.statusCode, 409);
      assert.equal(again.json().code, 'ROLLOUT_IN_PROGRESS');
      const abort = await svc.app.inject({ method: 'DELETE', url: '/api/v1/models/iris/rollout' });
      assert.equal(abort.statusCode, 200, abort.body);
      assert.equal(abort.json().rollout.failedCheck, 'aborted by hand');
      assert.equal(await ask('user-1'), '1');
      // A bad rollout spec is a 400 naming the field.
      const bad = await svc.app.inject({
        method: 'POST',
        url: '/api/v1/models/iris/versions/2/promote',
        payload: { rollout: { strategy: 'Canary', steps: [50, 20] } },
      });
      assert.equal(bad.statusCode, 400);
      assert.match(bad.body, /steps increase and end at 100/);
    } finally {
      await svc.close();
    }
  });

  test('a shadow: only the stable version answers, the copies are compared and the agreement is reported', { timeout: 30_000 }, async () => {
    const svc = await startService();
    try {
      await upload(svc, '1', 'iris-logreg');
      await upload(svc, '2', 'iris-wrong-labels');
      const r = await svc.app.inject({
        method: 'POST',
        url: '/api/v1/models/iris/versions/2/promote',
        payload: { rollout: { strategy: 'Shadow', interval: '1h', analysis: { minRequests: 20 } } },
      });
      assert.equal(r.statusCode, 202, r.body);
      const rows = await irisTruth();
      const load = traffic(send(svc), rows, { model: 'iris', maxRequests: 120 });
      await waitFor('120 answers', async () => load.sent >= 120, 20_000);
      await load.stop();
      assert.deepEqual([...load.byVersion.keys()], ['1'], 'only the stable version answered');
      const status = await waitFor(
        'the shadow figures',
        async () => {
          const now = await rollout(svc);
          return (now.rollout.figures?.compared ?? 0) >= 100 && now;
        },
        10_000,
      );
      assert.equal(status.rollout.phase, 'Shadowing');
      assert.equal(status.rollout.weight, 0);
      // iris-wrong-labels answers (y + 1) % 3 where logistic regression answers y: they rarely agree.
      assert.ok(status.rollout.figures!.agreement! < 0.2, `agreement ${status.rollout.figures!.agreement}`);
      assert.match((await svc.app.inject({ url: '/metrics' })).body, /^model_shadow_comparisons_total\{model="iris",version="2",result="disagree"\} \d+/m);
    } finally {
      await svc.close();
    }
  });
});
