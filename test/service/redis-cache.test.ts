import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { after, before, describe, test } from 'node:test';
import { waitFor } from '../helpers/processes.ts';
import { startRedis, type RedisServer } from '../helpers/redis.ts';
import { startService, uploadSample, type TestService } from '../helpers/service.ts';

// The prediction cache on a real redis-server.

const IRIS = { 'sepal length (cm)': 5.9, 'sepal width (cm)': 3.0, 'petal length (cm)': 5.1, 'petal width (cm)': 1.8 };
const features = (i: number) => ({ ...IRIS, 'sepal length (cm)': 4 + i / 100 });

describe('Redis prediction cache', () => {
  let redis: RedisServer;
  let svc: TestService;
  let client: Redis;
  before(async () => {
    redis = await startRedis();
    client = new Redis(redis.url, { maxRetriesPerRequest: 1 });
    // Redis itself: no in-process tier in front of it here (its own test is below).
    svc = await startService({ REDIS_URL: redis.url, CACHE_TTL_SECONDS: '60', CACHE_LOCAL_TTL_SECONDS: '0' });
    assert.equal((await uploadSample(svc.app, 'iris-logreg', '1', {}, 'iris')).statusCode, 201);
    assert.equal((await uploadSample(svc.app, 'iris-mlp', '2', {}, 'iris')).statusCode, 201);
  });
  after(async () => {
    client.disconnect();
    await svc.close();
    await redis.stop('SIGTERM');
  });

  const predict = (f: Record<string, number>, id = 'iris') => svc.app.inject({ method: 'POST', url: `/api/v1/predict/${id}`, payload: { features: f } });

  test('answers are stored in Redis with the 60 s TTL and served from it', async () => {
    const first = await predict(features(1));
    assert.equal(first.headers['x-cache'], 'miss');
    // Written after the answer, with the other writes of its event-loop turn.
    await waitFor('the answer in Redis', async () => (await client.keys('pred:iris:1~*')).length > 0, 5_000);
    const keys = await client.keys('pred:iris:1~*');
    assert.equal(keys.length, 1);
    const ttl = await client.ttl(keys[0]!);
    assert.ok(ttl > 55 && ttl <= 60, `ttl ${ttl}`);
    const second = await predict(features(1));
    assert.equal(second.headers['x-cache'], 'hit');
    assert.equal(second.json().prediction, first.json().prediction);
    assert.equal(second.json().confidence, first.json().confidence);
    assert.equal((await svc.app.inject({ url: '/health' })).json().cache.backend, 'redis');
  });

  test('a pinned version has its own keys: a new version never serves an old answer', async () => {
    await predict(features(2));
    const pinned = await predict(features(2), 'iris@2');
    assert.equal(pinned.headers['x-cache'], 'miss');
    assert.equal(pinned.json().model_version, '2');
    await waitFor('the answer in Redis', async () => (await client.keys('pred:iris:2~*')).length > 0, 5_000);
    assert.equal((await client.keys('pred:iris:2~*')).length, 1);
  });

  test("promote purges the model's keys", async () => {
    await predict(features(3));
    await waitFor('answers in Redis', async () => (await client.keys('pred:iris:*')).length > 0, 5_000);
    const res = await svc.app.inject({ method: 'POST', url: '/api/v1/models/iris/versions/2/promote' });
    assert.equal(res.statusCode, 200);
    assert.deepEqual(await client.keys('pred:iris:*'), []);
    const after = await predict(features(3));
    assert.equal(after.headers['x-cache'], 'miss');
    assert.equal(after.json().model_version, '2');
  });

  test('identical concurrent misses run the model once', async () => {
    const before = await inferenceCount(svc);
    const answers = await Promise.all(Array.from({ length: 20 }, () => predict(features(50))));
    assert.ok(answers.every((a) => a.statusCode === 200));
    assert.equal((await inferenceCount(svc)) - before, 1);
  });

  test('feedback for a prediction id is shared through Redis', async () => {
    const res = await predict(features(60));
    const id = res.json().prediction_id;
    // The log is written after the answer (batched with the other writes of the turn), never before it.
    await waitFor('the id in Redis', async () => (await client.exists(`predlog:${id}`)) === 1, 5_000);
    const fb = await svc.app.inject({ method: 'POST', url: '/api/v1/feedback', payload: { prediction_id: id, actual: res.json().prediction } });
    assert.equal(fb.statusCode, 200, fb.body);
    assert.equal(fb.json().correct, true);
  });

  test('feedback for each row of a batch, once per row, with the batch under one Redis key', async () => {
    const instances = [features(70), features(71), { ...IRIS, 'petal length (cm)': 1.4, 'petal width (cm)': 0.2 }, features(73), features(74)];
    const res = await svc.app.inject({ method: 'POST', url: '/api/v1/predict/iris/batch', payload: { instances } });
    assert.equal(res.statusCode, 200, res.body);
    const { prediction_ids: ids, predictions } = res.json() as { prediction_ids: string[]; predictions: Array<{ prediction: number }> };
    assert.equal(new Set(ids).size, instances.length, 'every row has its own id');
    for (const id of ids) assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    const stem = ids[0]!.slice(0, 32);
    await waitFor('the batch in Redis', async () => (await client.exists(`predlog:b:${stem}`)) === 1, 5_000);
    assert.ok((await client.ttl(`predlog:b:${stem}`)) > 0, 'the batch key expires');
    assert.deepEqual(await client.keys(`predlog:${stem}*`), [], 'no key per row');
    const feedback = (id: string, actual: number | string) =>
      svc.app.inject({ method: 'POST', url: '/api/v1/feedback', payload: { prediction_id: id, actual } });
    for (const i of [2, 0, 4]) {
      const fb = await feedback(ids[i]!, predictions[i]!.prediction);
      assert.equal(fb.statusCode, 200, fb.body);
      assert.deepEqual(fb.json(), { model: 'iris', version: '2', correct: true });
    }
    const wrong = await feedback(ids[1]!, predictions[1]!.prediction + 1);
    assert.equal(wrong.json().correct, false);
    // Once per row: again is a 404, and the rows nobody answered are still there.
    assert.equal((await feedback(ids[2]!, predictions[2]!.prediction)).statusCode, 404);
    assert.equal((await feedback(ids[3]!, predictions[3]!.prediction)).statusCode, 200);
    // An id of the batch's shape past its rows is unknown.
    assert.equal((await feedback(`${stem}00ff`, 0)).statusCode, 404);
  });
});

async function inferenceCount(svc: TestService): Promise<number> {
  const text = (await svc.app.inject({ url: '/metrics' })).body;
  return [...text.matchAll(/^model_inference_duration_seconds_count\{[^}]*\} (\d+)$/gm)].reduce((n, m) => n + Number(m[1]), 0);
}

test('fail-open: Redis killed during steady load, zero failed requests, cache back within seconds', async () => {
  const redis = await startRedis();
  // Every lookup reaches Redis: no in-process tier, which would answer these 30 hot keys by itself.
  const svc = await startService({ REDIS_URL: redis.url, REDIS_TIMEOUT_MS: '50', CACHE_LOCAL_TTL_SECONDS: '0' });
  try {
    assert.equal((await uploadSample(svc.app, 'iris-logreg', '1', {}, 'iris')).statusCode, 201);
    await svc.app.listen({ host: '127.0.0.1', port: 0 });
    const url = `http://127.0.0.1:${(svc.app.server.address() as { port: number }).port}/api/v1/predict/iris`;
    let stop = false;
    const failures: string[] = [];
    let ok = 0;
    const slowest = { ms: 0 };
    const client = async (c: number) => {
      let i = 0;
      while (!stop) {
        const started = performance.now();
        const res = await fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ features: features((c * 7 + i++) % 30) }),
        });
        await res.arrayBuffer();
        slowest.ms = Math.max(slowest.ms, performance.now() - started);
        if (res.status === 200) ok++;
        else failures.push(String(res.status));
      }
    };
    const clients = Array.from({ length: 8 }, (_, c) => client(c));
    await new Promise((r) => setTimeout(r, 500));
    await redis.stop('SIGKILL');
    await new Promise((r) => setTimeout(r, 300));
    const health = (await svc.app.inject({ url: '/health' })).json();
    assert.equal(health.status, 'degraded');
    assert.equal(health.cache.status, 'degraded');
    await new Promise((r) => setTimeout(r, 1000));
    await redis.start();
    const backAt = Date.now();
    // The cache is used again: lookups come back as hits within a few seconds.
    let hitsAgain = false;
    while (Date.now() - backAt < 10_000 && !hitsAgain) {
      await new Promise((r) => setTimeout(r, 200));
      const res = await svc.app.inject({ method: 'POST', url: '/api/v1/predict/iris', payload: { features: features(1) } });
      hitsAgain = res.headers['x-cache'] === 'hit';
    }
    stop = true;
    await Promise.all(clients);
    assert.deepEqual(failures, [], 'no request failed while Redis was away');
    assert.ok(ok > 100, `${ok} requests`);
    assert.ok(hitsAgain, 'cache hits again after Redis came back');
    // Under load a lookup may still time out now and then (50 ms here): ok again within seconds.
    await waitFor('/health says the cache is ok', async () => (await svc.app.inject({ url: '/health' })).json().cache.status === 'ok', 10_000);
    const metrics = (await svc.app.inject({ url: '/metrics' })).body;
    assert.match(metrics, /cache_requests_total\{model="iris",result="error"\} [1-9]/);
    assert.ok(slowest.ms < 2000, `a request stalled ${slowest.ms} ms`);
  } finally {
    await svc.close();
    await redis.stop();
  }
});

test('a frozen Redis (SIGSTOP): a prediction waits for one timeout at most, /health says degraded, and it recovers by itself', async () => {
  const redis = await startRedis();
  // Redis itself: the in-process tier would answer the repeated key below without it.
  const svc = await startService({ REDIS_URL: redis.url, REDIS_TIMEOUT_MS: '50', CACHE_LOCAL_TTL_SECONDS: '0' });
  try {
    await uploadSample(svc.app, 'iris-logreg', '1', {}, 'iris');
    const predict = (i: number) => svc.app.inject({ method: 'POST', url: '/api/v1/predict/iris', payload: { features: features(i) } });
    assert.equal((await predict(0)).statusCode, 200);
    redis.freeze();
    const times: number[] = [];
    for (let i = 1; i <= 30; i++) {
      const t0 = performance.now();
      assert.equal((await predict(i)).statusCode, 200);
      times.push(performance.now() - t0);
    }
    const slow = times.filter((ms) => ms > 40);
    assert.ok(slow.length <= 4, `requests that waited for Redis: ${slow.map((ms) => ms.toFixed(0)).join(', ')} ms`);
    assert.ok(
      Math.max(...times) < 200,
      `the slowest waited ${Math.max(...times).toFixed(0)} ms: one 50 ms timeout at most (${times.map((t) => t.toFixed(0)).join(' ')})`,
    );
    const health = (await svc.app.inject({ url: '/health' })).json();
    assert.equal(health.status, 'degraded');
    assert.match(health.cache.detail, /skipped after \d+ failures/);
    redis.thaw();
    await waitFor(
      'the cache back',
      async () => {
        await predict(100);
        return (await predict(100)).headers['x-cache'] === 'hit';
      },
      20_000,
      200,
    );
    assert.equal((await svc.app.inject({ url: '/health' })).json().cache.status, 'ok');
  } finally {
    redis.thaw();
    await svc.close();
    await redis.stop();
  }
});

test("feedback while Redis is frozen: 503 with Retry-After for what Redis holds; this replica's ids of the outage still work", async () => {
  const redis = await startRedis();
  const svc = await startService({ REDIS_URL: redis.url, REDIS_TIMEOUT_MS: '50' });
  try {
    await uploadSample(svc.app, 'iris-logreg', '1', {}, 'iris');
    const predict = async (i: number) => (await svc.app.inject({ method: 'POST', url: '/api/v1/predict/iris', payload: { features: features(i) } })).json();
    const feedback = (p: { prediction_id: string; prediction: number }) =>
      svc.app.inject({ method: 'POST', url: '/api/v1/feedback', payload: { prediction_id: p.prediction_id, actual: p.prediction } });
    const before = await predict(1);
    const client = new Redis(redis.url, { maxRetriesPerRequest: 1 });
    await waitFor('the id in Redis', async () => (await client.exists(`predlog:${before.prediction_id}`)) === 1, 5_000);
    client.disconnect();
    redis.freeze();
    const during = await predict(2);
    const batch = (
      await svc.app.inject({ method: 'POST', url: '/api/v1/predict/iris/batch', payload: { instances: [features(3), features(4), features(5)] } })
    ).json() as { prediction_ids: string[]; predictions: Array<{ prediction: number }> };
    await new Promise((r) => setTimeout(r, 200)); // their writes to Redis timed out by now: kept here
    for (const i of [0, 2]) {
      const row = await feedback({ prediction_id: batch.prediction_ids[i]!, prediction: batch.predictions[i]!.prediction });
      assert.equal(row.statusCode, 200, `row ${i} of a batch answered during the outage: ${row.body}`);
    }
    const answer = await feedback(before);
    assert.equal(answer.statusCode, 503, answer.body);
    assert.equal(answer.json().code, 'REDIS_UNAVAILABLE');
    assert.equal(answer.headers['retry-after'], '5');
    const local = await feedback(during);
    assert.equal(local.statusCode, 200, local.body);
    redis.thaw();
    await waitFor('feedback through Redis again', async () => (await feedback(before)).statusCode === 200, 20_000, 250);
  } finally {
    await svc.close();
    await redis.stop();
  }
});

test('the in-process tier in front of Redis: a hot answer costs no round trip (a frozen Redis does not slow it), and a promote purges it', async () => {
  const redis = await startRedis();
  const svc = await startService({ REDIS_URL: redis.url, REDIS_TIMEOUT_MS: '50', CACHE_LOCAL_TTL_SECONDS: '5' });
  try {
    await uploadSample(svc.app, 'iris-logreg', '1', {}, 'iris');
    await uploadSample(svc.app, 'iris-mlp', '2', {}, 'iris');
    const predict = () => svc.app.inject({ method: 'POST', url: '/api/v1/predict/iris', payload: { features: features(7) } });
    assert.equal((await predict()).headers['x-cache'], 'miss');
    const client = new Redis(redis.url, { maxRetriesPerRequest: 1 });
    await waitFor('the answer in Redis', async () => (await client.keys('pred:iris:1~*')).length === 1, 5_000);
    client.disconnect();
    redis.freeze();
    const t0 = performance.now();
    for (let i = 0; i < 20; i++) {
      const res = await predict();
      assert.equal(res.headers['x-cache'], 'hit');
      assert.equal(res.json().model_version, '1');
    }
    const ms = performance.now() - t0;
    const metrics = (await svc.app.inject({ url: '/metrics' })).body;
    assert.doesNotMatch(metrics, /cache_requests_total\{model="iris",result="error"\} [1-9]/, 'Redis was not asked');
    assert.ok(ms < 50 * 20, `${ms} ms: no request waited for Redis's timeout`);
    redis.thaw();
    assert.equal((await svc.app.inject({ method: 'POST', url: '/api/v1/models/iris/versions/2/promote' })).statusCode, 200);
    const after = await predict();
    assert.equal(after.headers['x-cache'], 'miss');
    assert.equal(after.json().model_version, '2');
    // Back to version 1: its answer was purged here too, so it is asked for again.
    assert.equal((await svc.app.inject({ method: 'POST', url: '/api/v1/models/iris/versions/1/promote' })).statusCode, 200);
    assert.equal((await predict()).headers['x-cache'], 'miss');
  } finally {
    redis.thaw();
    await svc.close();
    await redis.stop();
  }
});
