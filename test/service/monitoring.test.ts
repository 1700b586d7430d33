import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { cgroupReader, usableCores } from '../../service/observability/cgroup.ts';
import { ServiceMetrics } from '../../service/observability/metrics.ts';
import { freePort, recentOutput, startProcess, stopProcess, waitFor } from '../helpers/processes.ts';
import { reference, startService, uploadSample, type TestService } from '../helpers/service.ts';

const IRIS = { 'sepal length (cm)': 5.9, 'sepal width (cm)': 3.0, 'petal length (cm)': 5.1, 'petal width (cm)': 1.8 };

describe('feedback: accuracy and absolute error per model version', () => {
  let svc: TestService;
  before(async () => {
    svc = await startService();
    await uploadSample(svc.app, 'iris-species', '1', {}, 'species');
    await uploadSample(svc.app, 'diabetes-linear', '1', {}, 'diabetes');
  });
  after(() => svc.close());

  const predict = async (model: string, features: Record<string, number>) =>
    (await svc.app.inject({ method: 'POST', url: `/api/v1/predict/${model}`, payload: { features } })).json();
  const feedback = (prediction_id: string, actual: unknown) => svc.app.inject({ method: 'POST', url: '/api/v1/feedback', payload: { prediction_id, actual } });

  test('classifier feedback sets the accuracy gauge', async () => {
    const a = await predict('species', IRIS);
    const b = await predict('species', IRIS);
    assert.equal((await feedback(a.prediction_id, a.label)).json().correct, true);
    assert.equal((await feedback(b.prediction_id, 'setosa')).json().correct, false);
    const metrics = (await svc.app.inject({ url: '/metrics' })).body;
    assert.match(metrics, /model_accuracy_ratio\{model="species",version="1"\} 0\.5/);
    assert.match(metrics, /model_feedback_total\{model="species",version="1",outcome="correct"\} 1/);
  });

  test('regressor feedback records the absolute error', async () => {
    const ref = await reference('diabetes-linear');
    const p = await predict('diabetes', ref.samples[0]!.features);
    const bad = await feedback(p.prediction_id, 'high');
    assert.equal(bad.statusCode, 400);
    const res = await feedback(p.prediction_id, p.prediction + 12.5);
    assert.equal(res.statusCode, 200, res.body);
    assert.ok(Math.abs(res.json().absolute_error - 12.5) < 1e-9);
    const metrics = (await svc.app.inject({ url: '/metrics' })).body;
    assert.match(metrics, /model_absolute_error_sum\{model="diabetes",version="1"\} 12\.5/);
  });

  test('unknown or already used prediction ids are 404; a malformed one is 400', async () => {
    const p = await predict('species', IRIS);
    assert.equal((await feedback(p.prediction_id, 'virginica')).statusCode, 200);
    const again = await feedback(p.prediction_id, 'virginica');
    assert.equal(again.statusCode, 404);
    assert.equal(again.json().code, 'PREDICTION_NOT_FOUND');
    assert.equal((await feedback('00000000-0000-4000-8000-000000000000', 1)).statusCode, 404);
    assert.equal((await feedback('nope', 1)).statusCode, 400);
  });

  test('remembered predictions are bounded', async () => {
    const small = await startService({ PREDICTION_LOG_MAX_ENTRIES: '3' });
    try {
      await uploadSample(small.app, 'iris-logreg', '1', {}, 'iris');
      const ids = [];
      for (let i = 0; i < 5; i++)
        ids.push((await small.app.inject({ method: 'POST', url: '/api/v1/predict/iris', payload: { features: IRIS } })).json().prediction_id);
      const codes = [];
      for (const id of ids)
        codes.push((await small.app.inject({ method: 'POST', url: '/api/v1/feedback', payload: { prediction_id: id, actual: 2 } })).statusCode);
      assert.deepEqual(codes, [404, 404, 200, 200, 200]);
    } finally {
      await small.close();
    }
  });
});

describe("resource use against the cgroup's own limits", () => {
  let root: string;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'fake-cgroup-'));
  });
  after(() => rm(root, { recursive: true, force: true }));

  test('cgroup v2: limits, usage, the memory ratio and the CPU seconds counter', async () => {
    const v2 = join(root, 'v2');
    await mkdir(v2, { recursive: true });
    await writeFile(join(v2, 'cgroup.controllers'), 'cpu memory');
    await writeFile(join(v2, 'cpu.max'), '400000 100000');
    await writeFile(join(v2, 'memory.max'), String(8 * 2 ** 30));
    await writeFile(join(v2, 'memory.current'), String(2 * 2 ** 30));
    await writeFile(join(v2, 'cpu.stat'), 'usage_usec 1000000\nuser_usec 1\n');
    const reader = cgroupReader(v2);
    assert.equal(reader.version, 2);
    assert.equal(reader.cpuLimitCores(), 4);
    assert.equal(reader.memoryLimitBytes(), 8 * 2 ** 30);
    const metrics = new ServiceMetrics(reader);
    assert.match(await metrics.registry.metrics(), /^container_cpu_seconds_total 1$/m);
    // The cgroup's own counter, as it is at each scrape (PromQL takes the rate over its window).
    await writeFile(join(v2, 'cpu.stat'), 'usage_usec 1400000\n');
    const text = await metrics.registry.metrics();
    assert.match(text, /^container_memory_usage_ratio 0\.25$/m);
    assert.match(text, /^container_cpu_limit_cores 4$/m);
    assert.match(text, /^# TYPE container_cpu_seconds_total counter$/m);
    assert.match(text, /^container_cpu_seconds_total 1\.4$/m);
    assert.equal(usableCores(reader), Math.min(4, (await import('node:os')).availableParallelism()));
  });

  test('cgroup v1 and no limit', async () => {
    const v1 = join(root, 'v1');
    await mkdir(join(v1, 'cpu'), { recursive: true });
    await mkdir(join(v1, 'memory'), { recursive: true });
    await writeFile(join(v1, 'cpu', 'cpu.cfs_quota_us'), '150000');
    await writeFile(join(v1, 'cpu', 'cpu.cfs_period_us'), '100000');
    await writeFile(join(v1, 'memory', 'memory.limit_in_bytes'), '9223372036854771712');
    await writeFile(join(v1, 'memory', 'memory.usage_in_bytes'), '1000');
    const reader = cgroupReader(v1);
    assert.equal(reader.version, 1);
    assert.equal(reader.cpuLimitCores(), 1.5);
    assert.equal(reader.memoryLimitBytes(), undefined, 'the v1 "unlimited" value is no limit');
    assert.equal(usableCores(reader), Math.min(2, (await import('node:os')).availableParallelism()));
    assert.equal(cgroupReader(join(root, 'none')).version, undefined);
  });
});

describe('a real Prometheus scrapes the service', () => {
  test('PromQL gives the cache hit ratio the traffic implies; promtool accepts the exposition', async () => {
    const svc = await startService();
    const dir = await mkdtemp(join(tmpdir(), 'prometheus-'));
    let prometheus;
    try {
      await uploadSample(svc.app, 'iris-logreg', '1', {}, 'iris');
      await svc.app.listen({ host: '127.0.0.1', port: 0 });
      const target = `127.0.0.1:${(svc.app.server.address() as { port: number }).port}`;
      // 20 distinct feature vectors, each asked 5 times: 20 misses, 80 hits.
      for (let round = 0; round < 5; round++) {
        for (let i = 0; i < 20; i++) {
          const res = await fetch(`http://${target}/api/v1/predict/iris`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ features: { ...IRIS, 'sepal length (cm)': 4 + i / 10 } }),
          });
          assert.equal(res.status, 200);
        }
      }
      const exposition = await (await fetch(`http://${target}/metrics`)).text();
      const check = spawnSync('promtool', ['check', 'metrics'], { input: exposition, encoding: 'utf8' });
      assert.equal(check.status, 0, `promtool: ${check.stdout}${check.stderr}`);

      const port = await freePort();
      await writeFile(
        join(dir, 'prometheus.yml'),
        `global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: analytics-api\n    static_configs:\n      - targets: ['${target}']\n`,
      );
      prometheus = startProcess('prometheus', [
        `--config.file=${join(dir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
      ]);
      const p = prometheus;
      const query = async (q: string) => {
        const res = await fetch(`http://127.0.0.1:${port}/api/v1/query?query=${encodeURIComponent(q)}`);
        const body = (await res.json()) as { data: { result: Array<{ value: [number, string] }> } };
        return body.data.result[0] ? Number(body.data.result[0].value[1]) : undefined;
      };
      const ratio = await waitFor(
        `a scrape (${recentOutput(p).slice(-500)})`,
        () => query('sum(cache_requests_total{result="hit"}) / sum(cache_requests_total)'),
        30_000,
        500,
      );
      assert.equal(ratio, 0.8);
      assert.equal(await query('cache_hit_ratio'), 0.8);
      assert.equal(await query('sum(http_requests_total{route="/api/v1/predict/:model_id",status_code="200"})'), 100);
      assert.equal(await query('up{job="analytics-api"}'), 1);
    } finally {
      if (prometheus) await stopProcess(prometheus);
      await svc.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
