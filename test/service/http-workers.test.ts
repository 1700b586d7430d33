import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { freePort, runCommand, startProcess, waitFor } from '../helpers/processes.ts';
import { startRedis } from '../helpers/redis.ts';

// HTTP_WORKERS=2: two processes answer on one port (node:cluster), sharing Redis. What a user
// checks: every request is answered whichever worker takes it, feedback finds a prediction another
// worker made, /metrics counts both, model changes are refused with a reason, a killed worker is
// replaced, and SIGTERM stops them all.

const ROOT = new URL('../../', import.meta.url).pathname;
const BIN = join(ROOT, 'bin', 'analytics-api.js');
const IRIS = { 'sepal length (cm)': 5.9, 'sepal width (cm)': 3.0, 'petal length (cm)': 5.1, 'petal width (cm)': 1.8 };

/** One request on a connection of its own (the primary hands connections to the workers in turn). */
function call(port: number, method: string, path: string, body?: unknown): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, method, path, agent: false, headers: body === undefined ? {} : { 'content-type': 'application/json' } },
      (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (d: string) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      },
    );
    req.setTimeout(10_000, () => req.destroy(new Error(`${method} ${path}: no answer within 10 s`)));
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

const predictCount = (metrics: string) =>
  Number(/http_requests_total\{method="POST",route="\/api\/v1\/predict\/:model_id",status_code="200"\} (\d+)/.exec(metrics)?.[1] ?? 0);

test('HTTP_WORKERS=2 serves from two processes on one port: shared predictions, summed metrics, model changes refused, a dead worker replaced, SIGTERM stops all', {
  timeout: 150_000,
}, async () => {
  const data = await mkdtemp(join(tmpdir(), 'http-workers-'));
  const redis = await startRedis();
  const port = await freePort();
  let output = '';
  const child = startProcess(process.execPath, [BIN, 'serve'], {
    cwd: ROOT,
    env: {
      ...process.env,
      HTTP_WORKERS: '2',
      REDIS_URL: redis.url,
      PORT: String(port),
      GRPC_PORT: 'off',
      MODELS_DIR: join(data, 'models'),
      SAMPLE_MODELS_DIR: 'models',
      LOG_FORMAT: 'json',
      LOG_LEVEL: 'info',
    },
  });
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  const workerPids = () => [...output.matchAll(/"workerPid":(\d+),"msg":"HTTP worker listening"/g)].map((m) => Number(m[1]));
  try {
    await waitFor('two HTTP workers', async () => workerPids().length === 2, 90_000, 200);
    const pids = workerPids();

    const ids: string[] = [];
    for (let i = 0; i < 20; i++) {
      const r = await call(port, 'POST', '/api/v1/predict/iris-logreg', { features: { ...IRIS, 'sepal length (cm)': 5 + i / 10 } });
      assert.equal(r.status, 200, r.text);
      const body = JSON.parse(r.text) as { prediction: number; prediction_id: string };
      assert.equal(typeof body.prediction, 'number');
      ids.push(body.prediction_id);
    }
    // Each feedback lands on one worker or the other: the prediction log is Redis, so all are found.
    for (const id of ids.slice(0, 4)) {
      const r = await call(port, 'POST', '/api/v1/feedback', { prediction_id: id, actual: 2 });
      assert.equal(r.status, 200, r.text);
    }
    // Whichever worker answers the scrape, it counts both workers' requests.
    for (let i = 0; i < 2; i++) {
      const metrics = await call(port, 'GET', '/metrics');
      assert.equal(metrics.status, 200);
      assert.equal(predictCount(metrics.text), 20, 'the predictions of both workers, added up');
      assert.match(metrics.text, /^container_cpu_limit_cores 2$/m, 'a per-container figure is not added up');
    }

    const refused = await call(port, 'DELETE', '/api/v1/models/iris-logreg/versions/1');
    assert.equal(refused.status, 409, refused.text);
    assert.equal(JSON.parse(refused.text).code, 'MODELS_FIXED');
    assert.match(JSON.parse(refused.text).detail, /HTTP_WORKERS=1/);

    process.kill(pids[0]!, 'SIGKILL');
    await waitFor('a replacement worker', async () => workerPids().length === 3, 60_000, 200);
    assert.match(output, /"msg":"HTTP worker died; starting another"/);
    for (let i = 0; i < 4; i++) assert.equal((await call(port, 'POST', '/api/v1/predict/iris-logreg', { features: IRIS })).status, 200);

    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    const [code] = await exited;
    assert.equal(code, 0, output.slice(-4000));
    for (const pid of workerPids()) assert.throws(() => process.kill(pid, 0), /ESRCH/, `worker ${pid} is gone`);
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    for (const pid of workerPids()) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {}
    }
    await redis.stop();
    await rm(data, { recursive: true, force: true });
  }
});

test('HTTP_WORKERS above 1 without REDIS_URL stops before listening, saying what to set', { timeout: 30_000 }, async () => {
  const { REDIS_URL: _, ...env } = process.env;
  const r = await runCommand(process.execPath, [BIN, 'serve'], { cwd: ROOT, env: { ...env, HTTP_WORKERS: '2', PORT: '0' } });
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /HTTP_WORKERS: 2 HTTP workers share their cache and predictions through Redis: set REDIS_URL, or HTTP_WORKERS=1/);
});
