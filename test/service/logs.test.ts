import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { stripVTControlCharacters } from 'node:util';
import { freePort, recentOutput, startProcess, stopProcess, waitFor } from '../helpers/processes.ts';

// The service's logs as a person and a log pipeline get them: JSON lines when stdout is not a
// terminal (a pod), one line per API request, probes and scrapes quiet at info, no secrets; text
// at a terminal (a pseudo-terminal from script(1)).

const ROOT = new URL('../../', import.meta.url).pathname;
const TOKEN = 'logs-test-token-0123456789';
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

interface Logged {
  child: ChildProcess;
  port: number;
  /** Everything the process wrote on stdout so far. */
  stdout(): string;
}

async function startService(data: string, env: Record<string, string>): Promise<Logged> {
  const port = await freePort();
  const child = startProcess(process.execPath, ['service/main.ts'], {
    cwd: ROOT,
    env: { ...process.env, PORT: String(port), GRPC_PORT: 'off', MODELS_DIR: join(data, 'models'), API_TOKEN: TOKEN, ...env },
  });
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  await waitFor('the service', async () => (await fetch(`http://127.0.0.1:${port}/health`)).ok, 60_000, 200);
  return { child, port, stdout: () => out };
}

const lines = (text: string) =>
  text
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);

describe('the service logs, without a terminal', () => {
  let data: string;
  let svc: Logged;
  before(async () => {
    data = await mkdtemp(join(tmpdir(), 'logs-'));
    svc = await startService(data, { SAMPLE_MODELS_DIR: 'models', LOG_LEVEL: 'info' });
  });
  after(async () => {
    await stopProcess(svc.child);
    await rm(data, { recursive: true, force: true });
  });

  test('are JSON lines with the level as a label, an ISO time and a message', () => {
    const all = lines(svc.stdout());
    assert.ok(all.length > 0, recentOutput(svc.child));
    for (const l of all) {
      assert.equal(typeof l.level, 'string', JSON.stringify(l));
      assert.match(String(l.time), ISO);
      assert.equal(typeof l.msg, 'string');
    }
    assert.ok(all.some((l) => l.level === 'info' && /^Server listening at http:\/\/127\.0\.0\.1:\d+$/.test(String(l.msg))));
  });

  test('an idle service probed every second and scraped every 5 s writes nothing at info over 10 s', { timeout: 30_000 }, async () => {
    const start = svc.stdout().length;
    const base = `http://127.0.0.1:${svc.port}`;
    for (let second = 0; second < 10; second++) {
      const probes = ['/health', '/ready', '/v2/health/live', '/v2/health/ready', ...(second % 5 === 0 ? ['/metrics'] : [])];
      for (const path of probes) assert.equal((await fetch(base + path)).status, 200, path);
      await new Promise((r) => setTimeout(r, 1000));
    }
    assert.equal(svc.stdout().slice(start), '');
  });

  test('an API request is one info line: method, url, route, status, time taken', async () => {
    const start = svc.stdout().length;
    const res = await fetch(`http://127.0.0.1:${svc.port}/api/v1/predict/iris-logreg`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-request-id': 'logs-test-1' },
      body: JSON.stringify({ features: { 'sepal length (cm)': 5.9, 'sepal width (cm)': 3.0, 'petal length (cm)': 5.1, 'petal width (cm)': 1.8 } }),
    });
    assert.equal(res.status, 200);
    await waitFor('the request line', async () => svc.stdout().length > start, 5000, 20);
    await new Promise((r) => setTimeout(r, 200)); // nothing more comes
    const [line, ...more] = lines(svc.stdout().slice(start));
    assert.deepEqual(more, []);
    assert.equal(line!.level, 'info');
    assert.match(String(line!.time), ISO);
    assert.equal(line!.msg, 'request completed');
    assert.equal(line!.reqId, 'logs-test-1');
    const req = line!.req as Record<string, unknown>;
    assert.equal(req.method, 'POST');
    assert.equal(req.url, '/api/v1/predict/iris-logreg');
    assert.equal(line!.route, '/api/v1/predict/:model_id');
    assert.deepEqual(line!.res, { statusCode: 200 });
    assert.equal(typeof line!.responseTime, 'number');
  });

  test('an upload logs neither the token nor the model bytes', async () => {
    const start = svc.stdout().length;
    const model = await readFile(join(ROOT, 'models/iris-mlp.onnx'));
    const base64 = model.toString('base64');
    const res = await fetch(`http://127.0.0.1:${svc.port}/api/v1/models`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
      body: JSON.stringify({ name: 'logged', version: '1', metadata: {}, model_data: base64 }),
    });
    assert.equal(res.status, 201, await res.text());
    await waitFor('the upload lines', async () => svc.stdout().slice(start).includes('request completed'), 5000, 20);
    const written = svc.stdout().slice(start);
    assert.ok(!written.includes(TOKEN), 'no token');
    assert.ok(!written.includes(base64.slice(0, 64)), 'no model bytes');
    assert.ok(lines(written).some((l) => l.msg === 'model version uploaded' && l.model === 'logged'));
  });
});

describe('the service logs at a terminal', () => {
  test('are text, not JSON; probes show at LOG_LEVEL=debug', { timeout: 60_000 }, async () => {
    const data = await mkdtemp(join(tmpdir(), 'logs-tty-'));
    const port = await freePort();
    // script(1) runs the service (as make run does) on a pseudo-terminal and copies what it prints to our pipe.
    const command = `PORT=${port} GRPC_PORT=off MODELS_DIR=${join(data, 'models')} LOG_LEVEL=debug exec ${process.execPath} bin/analytics-api.js serve`;
    const child = startProcess('script', ['-q', '-e', '-c', command, '/dev/null'], { cwd: ROOT, env: { ...process.env, TERM: 'dumb' } });
    try {
      await waitFor('the service', async () => (await fetch(`http://127.0.0.1:${port}/health`)).ok, 60_000, 200);
      await waitFor('the probe line', async () => /GET \/health 200/.test(recentOutput(child)), 5000, 50);
      const text = stripVTControlCharacters(recentOutput(child)); // the terminal's colour codes
      assert.match(text, /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: Server listening at http:\/\/127\.0\.0\.1:\d+\r?$/m);
      assert.match(text, /^\[\d\d:\d\d:\d\d\.\d{3}\] DEBUG: GET \/health 200 [\d.]+ ms \(req-\d+\)\r?$/m);
      assert.doesNotMatch(text, /^\{"level"/m);
    } finally {
      await stopProcess(child);
      await rm(data, { recursive: true, force: true });
    }
  });
});
