import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

// `make bench` in miniature, so it cannot rot: bench/run.ts with BENCH_SMOKE=1 (one-second runs
// of a few scenarios, the service in memory and with Redis, the bare route and the FastAPI peer)
// writes its JSON and chart. Its figures mean nothing here; only that every part ran and answered.

const ROOT = new URL('../..', import.meta.url).pathname;

test('the bench runs end to end: every scenario answered without errors, targets checked, chart drawn', { timeout: 15 * 60_000 }, async () => {
  const results = await mkdtemp(join(tmpdir(), 'bench-smoke-'));
  try {
    const child = spawn(process.execPath, [join(ROOT, 'bench/run.ts')], {
      cwd: ROOT,
      env: { ...process.env, BENCH_SMOKE: '1', BENCH_RESULTS_DIR: results },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr.on('data', (c: Buffer) => (output += c.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    assert.equal(code, 0, output.slice(-4000));

    const out = JSON.parse(await readFile(join(results, 'latest.json'), 'utf8'));
    const ids = out.scenarios.map((s: { id: string }) => s.id);
    for (const id of [
      'bare',
      'memory.cached',
      'memory.uncached',
      'redis.cached',
      'v2.infer',
      'memory.batch64',
      'v2.batch64',
      'fastapi.memory.cached',
      'fastapi.memory.batch64',
      'bare2',
      'workers.redis.cached',
    ])
      assert.ok(ids.includes(id), `scenario ${id} is in the results`);
    for (const s of out.scenarios) {
      assert.ok(s.median.requests > 0, `${s.id} answered`);
      assert.equal(s.median.errors, 0, `${s.id} had no errors`);
      assert.ok(s.median.serverCpuMicrosPerRequest > 0, `${s.id} has the server's CPU per request`);
    }
    assert.equal(
      out.scenarios.find((s: { id: string }) => s.id === 'memory.batch64').median.rowsPerSecond,
      out.scenarios.find((s: { id: string }) => s.id === 'memory.batch64').median.requestsPerSecond * 64,
    );
    const targets = new Map(out.targets.map((t: { id: string; met: boolean }) => [t.id, t]));
    for (const id of [
      'cached.ratio',
      'cached.cpu',
      'uncached.ratio',
      'v2.ratio',
      'redis.cached.ratio',
      'batch.cpu',
      'batch.fastapi4',
      'fastapi.memory.cached',
      'workers.cached.ratio',
      'half.memory.cached',
      'loop',
      'soak',
      'zipf',
    ])
      assert.equal(typeof (targets.get(id) as { met?: unknown } | undefined)?.met, 'boolean', `target ${id} is checked`);
    assert.ok(out.soak.samples.length > 0);
    assert.ok(out.zipf.lookups > 0);

    const svg = await readFile(join(results, 'latest.svg'), 'utf8');
    assert.match(svg, /^<svg /);
    for (const text of ['rows/s', 'connections', 'Targets', 'FastAPI']) assert.ok(svg.includes(text), `the chart shows ${text}`);
  } finally {
    await rm(results, { recursive: true, force: true });
  }
});
