import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startRedis } from '../helpers/redis.ts';
import { startService, uploadSample } from '../helpers/service.ts';

// Promote and roll back repeatedly while clients predict over real HTTP: not one request fails,
// and every answer comes from one of the two versions; with the in-process cache and with Redis,
// whose lookups leave a request between choosing its version and running it for a round trip.
test('zero failed requests across version swaps under concurrent load', () => swapsUnderLoad({}));

test('zero failed requests across version swaps under concurrent load, with the Redis cache', async () => {
  const redis = await startRedis();
  try {
    await swapsUnderLoad({ REDIS_URL: redis.url });
  } finally {
    await redis.stop();
  }
});

async function swapsUnderLoad(env: Record<string, string>): Promise<void> {
  const svc = await startService({ CACHE_TTL_SECONDS: '1', ...env });
  try {
    assert.equal((await uploadSample(svc.app, 'iris-logreg', '1', {}, 'iris')).statusCode, 201);
    assert.equal((await uploadSample(svc.app, 'iris-mlp', '2', {}, 'iris')).statusCode, 201);
    await svc.app.listen({ host: '127.0.0.1', port: 0 });
    const address = svc.app.server.address() as { port: number };
    const url = `http://127.0.0.1:${address.port}/api/v1/predict/iris`;

    let stop = false;
    const outcomes = { ok: 0, failed: [] as string[], versions: new Set<string>() };
    const client = async (id: number) => {
      let i = 0;
      while (!stop) {
        // Distinct features per request so the cache does not hide the models.
        const features = { 'sepal length (cm)': 5 + ((id * 1000 + i++) % 997) / 1000, 'sepal width (cm)': 3, 'petal length (cm)': 4, 'petal width (cm)': 1.2 };
        const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ features }) });
        const body = (await res.json()) as { model_version: string };
        if (res.status === 200) {
          outcomes.ok++;
          outcomes.versions.add(body.model_version);
        } else outcomes.failed.push(`${res.status} ${JSON.stringify(body)}`);
      }
    };
    const clients = Array.from({ length: 16 }, (_, i) => client(i));
    const swaps: string[] = [];
    for (let s = 0; s < 10; s++) {
      await new Promise((r) => setTimeout(r, 50));
      const version = s % 2 === 0 ? '2' : '1';
      const res = await svc.app.inject({ method: 'POST', url: `/api/v1/models/iris/versions/${version}/promote` });
      assert.equal(res.statusCode, 200, res.body);
      swaps.push(version);
    }
    await new Promise((r) => setTimeout(r, 50));
    stop = true;
    await Promise.all(clients);
    assert.deepEqual(outcomes.failed, []);
    assert.ok(outcomes.ok > 100, `only ${outcomes.ok} requests ran`);
    assert.deepEqual([...outcomes.versions].sort(), ['1', '2']);
    const metrics = (await svc.app.inject({ url: '/metrics' })).body;
    assert.match(metrics, /^models_loaded 1$/m, 'the retired version was freed');
  } finally {
    await svc.close();
  }
}
