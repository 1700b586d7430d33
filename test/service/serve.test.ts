import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { Agent, request } from 'node:http';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { freePort, recentOutput, runCommand, startProcess, waitFor } from '../helpers/processes.ts';

// `analytics-api serve`: the service as the CLI runs it, the one command a person needs (make run
// uses it; `node service/main.ts` runs the same serve()).

const ROOT = new URL('../../', import.meta.url).pathname;
const BIN = join(ROOT, 'bin', 'analytics-api.js');

test('analytics-api serve answers predictions and stops on SIGTERM with exit 0', { timeout: 90_000 }, async () => {
  const data = await mkdtemp(join(tmpdir(), 'serve-'));
  const port = await freePort();
  const child = startProcess(process.execPath, [BIN, 'serve'], {
    cwd: ROOT,
    env: { ...process.env, PORT: String(port), GRPC_PORT: '0', MODELS_DIR: join(data, 'models'), SAMPLE_MODELS_DIR: 'models', LOG_LEVEL: 'info' },
  });
  try {
    await waitFor('the service', async () => (await fetch(`http://127.0.0.1:${port}/ready`)).status === 200, 60_000, 200);
    const res = await fetch(`http://127.0.0.1:${port}/api/v1/predict/iris-logreg`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ features: { 'sepal length (cm)': 5.9, 'sepal width (cm)': 3.0, 'petal length (cm)': 5.1, 'petal width (cm)': 1.8 } }),
    });
    assert.equal(res.status, 200);
    assert.equal(((await res.json()) as { prediction: number }).prediction, 2);
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    const [code] = await exited;
    assert.equal(code, 0, recentOutput(child));
    assert.match(recentOutput(child), /"signal":"SIGTERM","msg":"shutting down"/);
    assert.doesNotMatch(recentOutput(child), /analytics-api: SIGTERM/, 'the service logs its shutdown; the CLI adds no line of its own');
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    await rm(data, { recursive: true, force: true });
  }
});

test('analytics-api serve on SIGTERM drains keep-alive clients: no request fails, each is told Connection: close, then it exits 0', {
  timeout: 90_000,
}, async () => {
  const data = await mkdtemp(join(tmpdir(), 'serve-drain-'));
  const port = await freePort();
  const child = startProcess(process.execPath, [BIN, 'serve'], {
    cwd: ROOT,
    env: { ...process.env, PORT: String(port), GRPC_PORT: 'off', MODELS_DIR: join(data, 'models'), SAMPLE_MODELS_DIR: 'models', SHUTDOWN_DRAIN_SECONDS: '2' },
  });
  const agents: Agent[] = [];
  try {
    await waitFor('the service', async () => (await fetch(`http://127.0.0.1:${port}/ready`)).status === 200, 60_000, 200);
    // A client idling on a pooled connection: it holds the drain until its deadline, then is closed.
    const idle = connect(port, '127.0.0.1');
    await once(idle, 'connect');
    const idleClosed = once(idle, 'close');
    let requests = 0;
    const failures: string[] = [];
    // Busy keep-alive clients, each stopping at its first `Connection: close` (a Service would send its next connection to another pod).
    const client = async () => {
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      agents.push(agent);
      for (;;) {
        requests++;
        try {
          const r = await post(port, agent, {
            features: { 'sepal length (cm)': 5 + (requests % 10) / 10, 'sepal width (cm)': 3, 'petal length (cm)': 5, 'petal width (cm)': 1.8 },
          });
          if (r.status !== 200) failures.push(`HTTP ${r.status}`);
          if (r.connection === 'close') return;
        } catch (err) {
          failures.push((err as Error).message);
          return;
        }
      }
    };
    const clients = Promise.all([client(), client(), client(), client()]);
    await waitFor('requests flowing', async () => requests > 200, 30_000, 10);
    const exited = once(child, 'exit');
    const t0 = Date.now();
    child.kill('SIGTERM');
    await clients;
    assert.deepEqual(failures, [], `no request failed (${requests} sent)`);
    const [code] = await exited;
    const ms = Date.now() - t0;
    assert.equal(code, 0, recentOutput(child));
    await idleClosed;
    assert.ok(ms >= 1500 && ms < 10_000, `the idle connection held the drain until its 2 s deadline (${ms} ms)`);
    // The four clients, the idle one and this test's fetch of /ready (undici keeps it open).
    assert.match(recentOutput(child), /"connections":6,"timeoutSeconds":2,"msg":"draining: answering with Connection: close"/);
    assert.match(recentOutput(child), /"connections":2,"msg":"closing the connections still open"/);
  } finally {
    for (const a of agents) a.destroy();
    if (child.exitCode === null) child.kill('SIGKILL');
    await rm(data, { recursive: true, force: true });
  }
});

function post(port: number, agent: Agent, body: unknown): Promise<{ status: number; connection: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, path: '/api/v1/predict/iris-logreg', method: 'POST', agent, headers: { 'content-type': 'application/json' } },
      (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, connection: res.headers.connection }));
      },
    );
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

test('analytics-api serve: a bad environment, an argument, a taken port', { timeout: 60_000 }, async () => {
  const data = await mkdtemp(join(tmpdir(), 'serve-bad-'));
  const env = { ...process.env, MODELS_DIR: join(data, 'models'), GRPC_PORT: 'off' };
  try {
    const bad = await runCommand(process.execPath, [BIN, 'serve'], { cwd: ROOT, env: { ...env, PORT: 'eighty', REDIS_URL: 'not a url' } });
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /^Invalid configuration in the environment:\n {2}PORT: .*\n {2}REDIS_URL: /);

    const arg = await runCommand(process.execPath, [BIN, 'serve', '--port', '8080'], { cwd: ROOT, env });
    assert.equal(arg.code, 2);
    assert.match(arg.stderr, /^analytics-api serve: .*--port.*; the service takes its settings from the environment/);

    const help = await runCommand(process.execPath, [BIN, 'serve', '--help'], { cwd: ROOT, env });
    assert.equal(help.code, 0);
    assert.match(help.stdout, /^usage: analytics-api serve\n/);
    assert.match(help.stdout, /PORT, HOST, GRPC_PORT, MODELS_DIR/);

    const taken = createServer();
    taken.listen(0, '127.0.0.1');
    await once(taken, 'listening');
    try {
      const port = (taken.address() as { port: number }).port;
      const r = await runCommand(process.execPath, [BIN, 'serve'], { cwd: ROOT, env: { ...env, PORT: String(port) }, timeoutMs: 60_000 });
      assert.equal(r.code, 1, r.stdout + r.stderr);
      const fatal = r.stdout
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as { level: string; msg: string })
        .find((l) => l.level === 'fatal');
      assert.match(fatal?.msg ?? '', new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port}; set PORT`));
    } finally {
      taken.close();
    }
  } finally {
    await rm(data, { recursive: true, force: true });
  }
});

test('SIGTERM with models loaded and predictions in flight: exit 0, ten times in a row', { timeout: 300_000 }, async () => {
  // A pod stopped during a rollout must exit 0 every time: the inference workers release their
  // onnxruntime sessions before they are terminated (once, 1 of 27 stops aborted in Napi::Error).
  const data = await mkdtemp(join(tmpdir(), 'serve-sigterm-'));
  const row = { 'sepal length (cm)': 5.9, 'sepal width (cm)': 3.0, 'petal length (cm)': 5.1, 'petal width (cm)': 1.8 };
  try {
    const codes: Array<number | null> = [];
    for (let i = 0; i < 10; i++) {
      const port = await freePort();
      const child = startProcess(process.execPath, [BIN, 'serve'], {
        cwd: ROOT,
        env: {
          ...process.env,
          PORT: String(port),
          GRPC_PORT: 'off',
          MODELS_DIR: join(data, 'models'),
          SAMPLE_MODELS_DIR: 'models',
          LOG_LEVEL: 'warn',
          INFERENCE_THREADS: '2',
        },
      });
      try {
        await waitFor('the service', async () => (await fetch(`http://127.0.0.1:${port}/ready`)).status === 200, 60_000, 100);
        const predict = (name: string, features: Record<string, number>) =>
          fetch(`http://127.0.0.1:${port}/api/v1/predict/${name}/batch`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ instances: Array.from({ length: 64 }, () => features) }),
          }).catch(() => undefined);
        const inFlight = Array.from({ length: 8 }, (_, k) => predict(k % 2 ? 'iris-logreg' : 'iris-mlp', row));
        const exited = once(child, 'exit');
        child.kill('SIGTERM');
        await Promise.all(inFlight);
        const [code] = await exited;
        codes.push(code as number | null);
        assert.doesNotMatch(recentOutput(child), /terminate called|Napi::Error|Aborted/, `stop ${i + 1}`);
      } finally {
        if (child.exitCode === null) child.kill('SIGKILL');
      }
    }
    assert.deepEqual(codes, Array(10).fill(0));
  } finally {
    await rm(data, { recursive: true, force: true });
  }
});
