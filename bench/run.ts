import autocannon from 'autocannon';
import { fork, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { figures } from '../service/figures.ts';

// `make bench`: the service beside a bare Fastify route (the ceiling), measured in one run on
// the same machine. Figures are ratios to the bare route; absolute numbers vary with the machine.

const DURATION = Number(process.env.BENCH_DURATION_SECONDS ?? 10);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 32);
const ROOT = new URL('..', import.meta.url).pathname;
const IRIS = { 'sepal length (cm)': 5.9, 'sepal width (cm)': 3.0, 'petal length (cm)': 5.1, 'petal width (cm)': 1.8 };

/** Ranks 0..n-1 drawn with probability ∝ 1/(rank+1)^s, from a seeded generator (mulberry32). */
function zipf(n: number, s: number, seed = 42): () => number {
  const cdf = new Float64Array(n);
  let total = 0;
  for (let k = 0; k < n; k++) cdf[k] = total += 1 / (k + 1) ** s;
  let state = seed >>> 0;
  const random = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return () => {
    const x = random() * total;
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cdf[mid]! < x) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
}

async function cacheCounts(base: string, model: string): Promise<{ hit: number; miss: number }> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const count = (result: string) => Number(new RegExp(`cache_requests_total\\{model="${model}",result="${result}"\\} (\\d+)`).exec(text)?.[1] ?? 0);
  return { hit: count('hit'), miss: count('miss') };
}

interface Result {
  name: string;
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
  non2xx: number;
  ratioToBare?: number;
}

function startChild(script: string, env: Record<string, string>, ready: (child: ChildProcess) => Promise<number>): Promise<{ child: ChildProcess; port: number }> {
  const child = fork(join(ROOT, script), [], { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  return ready(child).then((port) => ({ child, port }));
}

async function waitReady(url: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      if ((await fetch(url)).status === 200) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${url} not ready after ${timeoutMs} ms`);
}

async function load(name: string, url: string, body: (i: number) => unknown): Promise<Result> {
  let i = 0;
  const result = await autocannon({
    url,
    method: 'POST',
    connections: CONNECTIONS,
    duration: DURATION,
    headers: { 'content-type': 'application/json' },
    requests: [{ setupRequest: (req) => ({ ...req, body: JSON.stringify(body(i++)) }) }],
  });
  return {
    name,
    requestsPerSecond: Math.round(result.requests.average),
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    errors: result.errors,
    non2xx: result.non2xx,
  };
}

async function main() {
  const modelsDir = await mkdtemp(join(tmpdir(), 'bench-models-'));
  const children: ChildProcess[] = [];
  try {
    const bare = await startChild('bench/bare-server.ts', {}, (c) => new Promise((resolve) => c.once('message', (m: { port: number }) => resolve(m.port))));
    children.push(bare.child);
    const port = 18000 + Math.floor(Math.random() * 2000);
    const service = await startChild('service/main.ts', { MODELS_DIR: modelsDir, SAMPLE_MODELS_DIR: join(ROOT, 'models'), PORT: String(port), LOG_LEVEL: 'warn', CACHE_MAX_ENTRIES: '2000000', RATE_LIMIT_PREDICT_PER_MINUTE: '1000000000' }, async () => {
      await waitReady(`http://127.0.0.1:${port}/ready`);
      return port;
    });
    children.push(service.child);
    const base = `http://127.0.0.1:${service.port}`;

    const results: Result[] = [];
    results.push(await load('bare fastify route (ceiling)', `http://127.0.0.1:${bare.port}/bare/iris-logreg`, () => ({ features: IRIS })));
    results.push(await load('cached prediction', `${base}/api/v1/predict/iris-logreg`, () => ({ features: IRIS })));
    // A new feature vector every request: every one is a miss and runs the model.
    results.push(await load('uncached prediction', `${base}/api/v1/predict/iris-logreg`, (i) => ({ features: { ...IRIS, 'sepal length (cm)': 4 + i * 1e-7 } })));
    // The specification's cache hit ratio (> 80 %) under a realistic skew: 10,000 distinct feature
    // vectors drawn by Zipf (s = 1.1), so a few are asked often and most rarely.
    const DISTINCT = 10_000;
    const rank = zipf(DISTINCT, 1.1);
    const wineRows = (await import('../models/wine-forest.json', { with: { type: 'json' } })).default.samples.map((x: { features: Record<string, number> }) => x.features);
    const before = await cacheCounts(base, 'wine-forest');
    results.push(
      await load('zipf workload (10k vectors)', `${base}/api/v1/predict/wine-forest`, () => {
        const r = rank();
        const row = wineRows[r % wineRows.length]!;
        return { features: { ...row, proline: row.proline + Math.floor(r / wineRows.length) } };
      }),
    );
    const after = await cacheCounts(base, 'wine-forest');
    const hits = after.hit - before.hit;
    const lookups = hits + after.miss - before.miss;
    const zipfHitRatio = lookups > 0 ? hits / lookups : Number.NaN;

    const ceiling = results[0]!.requestsPerSecond;
    for (const r of results) r.ratioToBare = Number((r.requestsPerSecond / ceiling).toFixed(3));

    const metrics = await (await fetch(`${base}/metrics`)).text();
    const loadSeconds = Number(/model_load_duration_seconds_sum\{model="digits-forest-large",version="1"\} ([0-9.e-]+)/.exec(metrics)?.[1] ?? NaN);

    console.log(`\nbench: ${DURATION}s per scenario, ${CONNECTIONS} connections, loopback, one machine\n`);
    console.log('scenario'.padEnd(32), 'req/s'.padStart(9), 'p50 ms'.padStart(8), 'p99 ms'.padStart(8), 'x bare'.padStart(8), 'errors'.padStart(7));
    for (const r of results) {
      console.log(r.name.padEnd(32), String(r.requestsPerSecond).padStart(9), String(r.p50Ms).padStart(8), String(r.p99Ms).padStart(8), String(r.ratioToBare).padStart(8), String(r.errors + r.non2xx).padStart(7));
    }
    const perRequestUs = (rps: number) => 1e6 / rps;
    const hitCost = perRequestUs(results[1]!.requestsPerSecond) - perRequestUs(ceiling);
    console.log(`\ncache hit ratio, zipf workload: ${(zipfHitRatio * 100).toFixed(1)} % over ${lookups} lookups (target > ${figures.targets.cacheHitRatio * 100} %)`);
    console.log(`cost of a cache hit over the bare route: ${hitCost.toFixed(1)} µs of service time per request (at saturation)`);
    console.log(`\nlargest sample model (digits-forest-large, 4.3 MB) load time: ${loadSeconds.toFixed(3)} s (target < ${figures.targets.modelLoadSeconds} s)`);

    await mkdir(join(ROOT, 'bench/results'), { recursive: true });
    const out = { date: new Date().toISOString(), durationSeconds: DURATION, connections: CONNECTIONS, results, zipfHitRatio, cacheHitCostMicroseconds: hitCost, largestModelLoadSeconds: loadSeconds };
    await writeFile(join(ROOT, 'bench/results/latest.json'), JSON.stringify(out, null, 2) + '\n');
    console.log('saved bench/results/latest.json');
  } finally {
    for (const c of children) c.kill('SIGTERM');
    await rm(modelsDir, { recursive: true, force: true });
  }
}

await main();
