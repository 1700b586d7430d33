import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startRedis } from '../helpers/redis.ts';
import { startService, uploadSample } from '../helpers/service.ts';

const IRIS = { 'sepal length (cm)': 5.9, 'sepal width (cm)': 3.0, 'petal length (cm)': 5.1, 'petal width (cm)': 1.8 };

const TOKEN = 'a-token-of-sixteen-characters-or-more';

test('per-route limits per client: 429 with retry-after and x-ratelimit headers', async () => {
  const svc = await startService({ RATE_LIMIT_PREDICT_PER_MINUTE: '5', RATE_LIMIT_UPLOAD_PER_MINUTE: '2', API_TOKEN: TOKEN });
  const admin = { authorization: `Bearer ${TOKEN}` };
  try {
    assert.equal((await uploadSample(svc.app, 'iris-logreg', '1', {}, 'iris', admin)).statusCode, 201);
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
    // An invented bearer value is the same client (its address); the API token is a client of its own; uploads have their budget.
    assert.equal((await predict({ authorization: 'Bearer someone-else' })).statusCode, 429);
    assert.equal((await predict(admin)).statusCode, 200);
    assert.equal((await uploadSample(svc.app, 'iris-mlp', '2', {}, 'iris', admin)).statusCode, 201);
    assert.equal((await uploadSample(svc.app, 'iris-mlp', '3', {}, 'iris', admin)).statusCode, 429);
    // Health, readiness and metrics are never limited.
    for (let i = 0; i < 10; i++) assert.equal((await svc.app.inject({ url: '/health' })).statusCode, 200);
    const metrics = (await svc.app.inject({ url: '/metrics' })).body;
    assert.match(metrics, /rate_limit_rejections_total\{route="\/api\/v1\/predict\/:model_id"\} 3/);
    assert.match(metrics, /http_errors_total\{code="RATE_LIMITED"\} 4/);
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

test('limits are per replica, in memory: Redis down or frozen neither slows nor blocks them', async () => {
  const redis = await startRedis();
  const svc = await startService({ REDIS_URL: redis.url, RATE_LIMIT_PREDICT_PER_MINUTE: '3' });
  try {
    await uploadSample(svc.app, 'iris-logreg', '1', {}, 'iris');
    const predict = () => svc.app.inject({ method: 'POST', url: '/api/v1/predict/iris', payload: { features: IRIS } });
    await redis.freeze();
    const t0 = performance.now();
    const statuses = [];
    for (let i = 0; i < 4; i++) statuses.push((await predict()).statusCode);
    assert.deepEqual(statuses, [200, 200, 200, 429], 'the limit holds with Redis frozen');
    assert.ok(performance.now() - t0 < 2_000, `${performance.now() - t0} ms`);
  } finally {
    await redis.thaw();
    await svc.close();
    await redis.stop();
  }
});

test('wrong tokens: past 10 a minute, 429 with retry-after, even for the right one; other clients are not affected', async () => {
  const svc = await startService({ API_TOKEN: TOKEN });
  try {
    const promote = (authorization: string, remoteAddress = '10.1.2.3') =>
      svc.app.inject({ method: 'POST', url: '/api/v1/models/iris/versions/1/promote', headers: { authorization }, remoteAddress });
    const statuses = [];
    for (let i = 0; i < 12; i++) statuses.push((await promote(`Bearer guess-${i}`)).statusCode);
    assert.deepEqual(statuses, [...new Array(10).fill(401), 429, 429]);
    const limited = await promote(`Bearer ${TOKEN}`);
    assert.equal(limited.statusCode, 429, 'not even checked');
    assert.ok(Number(limited.headers['retry-after']) > 0);
    assert.equal((await promote(`Bearer ${TOKEN}`, '10.9.9.9')).statusCode, 404, 'another client with the token gets through (no such model)');
  } finally {
    await svc.close();
  }
});

test('without a token, only the client the service believes is local may change models', async () => {
  const svc = await startService({ TRUSTED_PROXIES: '127.0.0.1' });
  try {
    const promote = (headers: Record<string, string>, remoteAddress = '127.0.0.1') =>
      svc.app.inject({ method: 'POST', url: '/api/v1/models/iris/versions/1/promote', headers, remoteAddress });
    assert.equal((await promote({})).statusCode, 404, 'a local client gets through (no such model)');
    assert.equal((await promote({ 'x-forwarded-for': '203.0.113.9' })).statusCode, 403, 'a remote client behind the local proxy is remote');
    assert.equal((await promote({}, '127.0.0.2')).statusCode, 403);
    assert.equal((await promote({ 'x-forwarded-for': '127.0.0.1' }, '192.0.2.4')).statusCode, 403, 'a spoofed header from an untrusted peer is ignored');
  } finally {
    await svc.close();
  }
});
