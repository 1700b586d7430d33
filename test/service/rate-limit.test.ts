import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startRedis } from '../helpers/redis.ts';
import { startService, uploadSample } from '../helpers/service.ts';

const IRIS = { 'sepal length (cm)': 5.9, 'sepal width (cm)': 3.0, 'petal length (cm)': 5.1, 'petal width (cm)': 1.8 };

test('per-route limits per client: 429 with retry-after and x-ratelimit headers', async () => {
  const svc = await startService({ RATE_LIMIT_PREDICT_PER_MINUTE: '5', RATE_LIMIT_UPLOAD_PER_MINUTE: '2' });
  try {
    assert.equal((await uploadSample(svc.app, 'iris-logreg', '1', {}, 'iris')).statusCode, 201);
    const predict = (headers: Record<string, string> = {}) =>
      svc.app.inject({ method: 'POST', url: '/api/v1/predict/iris', headers, payload: { features: IRIS } });
    const statuses = [];
    for (let i = 0; i < 6; i++) statuses.push((await predict()).statusCode);
    assert.deepEqual(statuses, [200, 200, 200, 200, 200, 429]);
    const limited = await predict();
    assert.equal(limited.statusCode, 429);
    assert.equal(limited.json().code, 'RATE_LIMITED');
    assert.equal(limited.headers['content-type'], 'application/problem+json; charset=utf-8');
    assert.ok(Number(limited.headers['retry-after']) > 0);
    assert.equal(limited.headers['x-ratelimit-limit'], '5');
    assert.equal(limited.headers['x-ratelimit-remaining'], '0');
    // Another client (its own bearer token) has its own budget; uploads have theirs.
    assert.equal((await predict({ authorization: 'Bearer someone-else' })).statusCode, 200);
    assert.equal((await uploadSample(svc.app, 'iris-mlp', '2', {}, 'iris')).statusCode, 201);
    assert.equal((await uploadSample(svc.app, 'iris-mlp', '3', {}, 'iris')).statusCode, 429);
    // Health, readiness and metrics are never limited.
    for (let i = 0; i < 10; i++) assert.equal((await svc.app.inject({ url: '/health' })).statusCode, 200);
    const metrics = (await svc.app.inject({ url: '/metrics' })).body;
    assert.match(metrics, /rate_limit_rejections_total\{route="\/api\/v1\/predict\/:model_id"\} 2/);
    assert.match(metrics, /http_errors_total\{code="RATE_LIMITED"\} 3/);
  } finally {
    await svc.close();
  }
});

test('client IPs come from X-Forwarded-For only behind a trusted proxy', async () => {
  for (const trusted of [true, false]) {
    const svc = await startService({ RATE_LIMIT_PREDICT_PER_MINUTE: '1', ...(trusted ? { TRUSTED_PROXIES: '127.0.0.1/8' } : {}) });
    try {
      await uploadSample(svc.app, 'iris-logreg', '1', {}, 'iris');
      const from = (ip: string) =>
        svc.app.inject({ method: 'POST', url: '/api/v1/predict/iris', headers: { 'x-forwarded-for': ip }, payload: { features: IRIS } });
      assert.equal((await from('203.0.113.1')).statusCode, 200);
      // Behind the trusted ingress, another client is another budget; otherwise the header is ignored.
      assert.equal((await from('203.0.113.2')).statusCode, trusted ? 200 : 429);
    } finally {
      await svc.close();
    }
  }
});

test('limits are shared by replicas through Redis, and a Redis failure does not block requests', async () => {
  const redis = await startRedis();
  const a = await startService({ REDIS_URL: redis.url, RATE_LIMIT_PREDICT_PER_MINUTE: '4' });
  const b = await startService({ REDIS_URL: redis.url, RATE_LIMIT_PREDICT_PER_MINUTE: '4' });
  try {
    await uploadSample(a.app, 'iris-logreg', '1', {}, 'iris');
    await uploadSample(b.app, 'iris-logreg', '1', {}, 'iris');
    const predict = (svc: typeof a) => svc.app.inject({ method: 'POST', url: '/api/v1/predict/iris', payload: { features: IRIS } });
    const statuses = [];
    for (let i = 0; i < 3; i++) statuses.push((await predict(a)).statusCode, (await predict(b)).statusCode);
    assert.deepEqual(statuses, [200, 200, 200, 200, 429, 429]);
    await redis.stop('SIGKILL');
    await new Promise((r) => setTimeout(r, 200));
    assert.equal((await predict(a)).statusCode, 200, 'with Redis down, requests are let through');
  } finally {
    await a.close();
    await b.close();
    await redis.stop();
  }
});
