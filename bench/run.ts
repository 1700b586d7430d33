import autocannon from 'autocannon';
import { fork, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { figures } from '../contract/figures.ts';
import { barChartSvg } from './chart.ts';

// `make bench`: the service beside a bare Fastify route (the ceiling), measured in one run on
// the same machine, each scenario with requests/s, p50/p99 latency, the service's event-loop
// delay p99 and peak RSS, as ratios to the bare route. Absolute numbers vary with the machine;
// compare the ratios. Results: bench/results/latest.json and latest.svg.

const DURATION = Number(process.env.BENCH_DURATION_SECONDS ?? 10);
const SOAK = Number(process.env.BENCH_SOAK_SECONDS ?? 30);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 32);
const ROOT = new URL('..', import.meta.url).pathname;
const IRIS = { 'sepal length (cm)': 5.9, 'sepal width (cm)': 3.0, 'petal length (cm)': 5.1, 'petal width (cm)': 1.8 };
const IRIS_FEATURES = Object.keys(IRIS);

interface Result {
  name: string;
  requestsPerSecond: number;
  rowsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
  eventLoopDelayP99Ms?: number;
  peakRssMiB?: number;
  ratioToBare?: number;
}

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

/** The service's own view of itself, from its /metrics. */
class ServiceProbe {
  private readonly base: string;
  constructor(base: string) {
    this.base = base;
  }
  async metric(pattern: RegExp): Promise<number> {
    const text = await (await fetch(`${this.base}/metrics`)).text();
    return Number(pattern.exec(text)?.[1] ?? NaN);
  }
  /**
   * One scrape: RSS now, and the event-loop delay p99 since the previous scrape (prom-client resets
   * its event-loop histogram at each scrape, so a scenario's p99 is the worst of its scrapes).
   */
  async sample(): Promise<{ rss: number; loopP99: number }> {
    const text = await (await fetch(`${this.base}/metrics`)).text();
    const value = (re: RegExp) => Number(re.exec(text)?.[1] ?? NaN);
    return { rss: value(/^process_resident_memory_bytes (\S+)$/m), loopP99: value(/^nodejs_eventloop_lag_p99_seconds (\S+)$/m) };
  }
  rss = async () => (await this.sample()).rss;
}

async function load(name: string, url: string, body: (i: number) => unknown, rowsPerRequest = 1, probe?: ServiceProbe, duration = DURATION): Promise<Result> {
  let i = 0;
  await probe?.sample();
  let peakRss = 0;
  let loopP99 = 0;
  const observe = (s: { rss: number; loopP99: number }) => {
    peakRss = Math.max(peakRss, s.rss);
    loopP99 = Math.max(loopP99, s.loopP99);
  };
  const sampler = probe ? setInterval(() => void probe.sample().then(observe), 500) : undefined;
  const result = await autocannon({
    url,
    method: 'POST',
    connections: CONNECTIONS,
    duration,
    headers: { 'content-type': 'application/json' },
    requests: [{ setupRequest: (req: autocannon.Request) => ({ ...req, body: JSON.stringify(body(i++)) }) }],
  });
  clearInterval(sampler);
  const r: Result = {
    name,
    requestsPerSecond: Math.round(result.requests.average),
    rowsPerSecond: Math.round(result.requests.average * rowsPerRequest),
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    errors: result.errors + result.non2xx,
  };
  if (probe) {
    observe(await probe.sample());
    r.eventLoopDelayP99Ms = Number((loopP99 * 1000).toFixed(2));
    r.peakRssMiB = Math.round(peakRss / 2 ** 20);
  }
  return r;
}

function start(script: string, env: Record<string, string>): ChildProcess {
  return fork(join(ROOT, script), [], { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
}

async function main() {
  const modelsDir = await mkdtemp(join(tmpdir(), 'bench-models-'));
  const children: ChildProcess[] = [];
  try {
    const bare = start('bench/bare-server.ts', {});
    children.push(bare);
    const barePort = await new Promise<number>((resolve) => bare.once('message', (m: { port: number }) => resolve(m.port)));
    const port = 18000 + Math.floor(Math.random() * 2000);
    children.push(
      start('service/main.ts', {
        MODELS_DIR: modelsDir,
        SAMPLE_MODELS_DIR: join(ROOT, 'models'),
        PORT: String(port),
        GRPC_PORT: '0',
        LOG_LEVEL: 'warn',
        RATE_LIMIT_PREDICT_PER_MINUTE: '1000000000',
      }),
    );
    const base = `http://127.0.0.1:${port}`;
    await waitReady(`${base}/ready`);
    const probe = new ServiceProbe(base);
    // The same model once more with batching off, for the side-by-side.
    const qs = new URLSearchParams({
      name: 'iris-unbatched',
      version: '1',
      features: JSON.stringify(IRIS_FEATURES),
      metadata: JSON.stringify({ batching: false }),
    });
    const upload = await fetch(`${base}/api/v1/models?${qs}`, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream' },
      body: await readFile(join(ROOT, 'models/iris-logreg.onnx')),
    });
    if (upload.status !== 201) throw new Error(`upload failed: ${upload.status} ${await upload.text()}`);

    const distinct = (i: number) => ({ features: { ...IRIS, 'sepal length (cm)': 4 + i * 1e-7 } });
    const results: Result[] = [];
    results.push(await load('bare fastify route (ceiling)', `http://127.0.0.1:${barePort}/bare/iris-logreg`, () => ({ features: IRIS })));
    results.push(await load('cached prediction', `${base}/api/v1/predict/iris-logreg`, () => ({ features: IRIS }), 1, probe));
    // A new feature vector every request: every one is a miss and runs the model.
    results.push(await load('uncached, batching on', `${base}/api/v1/predict/iris-logreg`, distinct, 1, probe));
    results.push(await load('uncached, batching off', `${base}/api/v1/predict/iris-unbatched`, distinct, 1, probe));
    results.push(
      await load(
        'V2 infer (JSON)',
        `${base}/v2/models/iris-logreg/infer`,
        (i) => ({ inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: [4 + i * 1e-7, 3.0, 5.1, 1.8] }] }),
        1,
        probe,
      ),
    );
    const batch = Array.from({ length: 64 }, (_, r) => ({ ...IRIS, 'petal width (cm)': 0.1 + r / 64 }));
    results.push(await load('batch call (64 rows)', `${base}/api/v1/predict/iris-logreg/batch`, () => ({ instances: batch }), 64, probe));

    // The specification's cache hit ratio (> 80 %) under a realistic skew: 10,000 distinct feature
    // vectors drawn by Zipf (s = 1.1), so a few are asked often and most rarely.
    const rank = zipf(10_000, 1.1);
    const wineRows = JSON.parse(await readFile(join(ROOT, 'models/wine-forest.json'), 'utf8')).samples.map(
      (x: { features: Record<string, number> }) => x.features,
    );
    const hitsBefore = await probe.metric(/cache_requests_total\{model="wine-forest",result="hit"\} (\d+)/);
    const missesBefore = await probe.metric(/cache_requests_total\{model="wine-forest",result="miss"\} (\d+)/);
    results.push(
      await load(
        'zipf workload (10k vectors)',
        `${base}/api/v1/predict/wine-forest`,
        () => {
          const r = rank();
          const row = wineRows[r % wineRows.length]!;
          return { features: { ...row, proline: row.proline + Math.floor(r / wineRows.length) } };
        },
        1,
        probe,
      ),
    );
    const hits = (await probe.metric(/cache_requests_total\{model="wine-forest",result="hit"\} (\d+)/)) - (Number.isNaN(hitsBefore) ? 0 : hitsBefore);
    const misses = (await probe.metric(/cache_requests_total\{model="wine-forest",result="miss"\} (\d+)/)) - (Number.isNaN(missesBefore) ? 0 : missesBefore);
    const zipfHitRatio = hits / (hits + misses);

    // Memory over a longer run of uncached predictions: RSS should stay flat.
    const rssStart = await probe.rss();
    const soak = await load(`soak: uncached for ${SOAK}s`, `${base}/api/v1/predict/iris-logreg`, (i) => distinct(1e7 + i), 1, probe, SOAK);
    const rssEnd = await probe.rss();
    results.push(soak);

    const ceiling = results[0]!.requestsPerSecond;
    for (const r of results) r.ratioToBare = Number((r.requestsPerSecond / ceiling).toFixed(3));
    const loadSeconds = await probe.metric(/model_load_duration_seconds_sum\{model="digits-forest-large",version="1"\} (\S+)/);
    const hitCost = 1e6 / results[1]!.requestsPerSecond - 1e6 / ceiling;

    console.log(
      `\nbench: ${DURATION}s per scenario, ${CONNECTIONS} connections, loopback, one machine (${(await import('node:os')).availableParallelism()} cores)\n`,
    );
    console.log(
      'scenario'.padEnd(30),
      'req/s'.padStart(8),
      'rows/s'.padStart(8),
      'p50 ms'.padStart(7),
      'p99 ms'.padStart(7),
      'x bare'.padStart(7),
      'loop p99'.padStart(9),
      'RSS MiB'.padStart(8),
      'errors'.padStart(7),
    );
    for (const r of results) {
      console.log(
        r.name.padEnd(30),
        String(r.requestsPerSecond).padStart(8),
        String(r.rowsPerSecond).padStart(8),
        String(r.p50Ms).padStart(7),
        String(r.p99Ms).padStart(7),
        String(r.ratioToBare).padStart(7),
        (r.eventLoopDelayP99Ms === undefined ? '-' : `${r.eventLoopDelayP99Ms} ms`).padStart(9),
        String(r.peakRssMiB ?? '-').padStart(8),
        String(r.errors).padStart(7),
      );
    }
    const targets = {
      cachedRatio: { value: results[1]!.ratioToBare!, target: 0.8 },
      uncachedRatio: { value: results[2]!.ratioToBare!, target: 0.6 },
      eventLoopDelayP99Ms: { value: Math.max(...results.slice(1).map((r) => r.eventLoopDelayP99Ms ?? 0)), target: 20 },
      cacheHitRatio: { value: zipfHitRatio, target: figures.targets.cacheHitRatio },
      largestModelLoadSeconds: { value: loadSeconds, target: figures.targets.modelLoadSeconds },
    };
    console.log(
      `\ncache hit ratio, zipf workload: ${(zipfHitRatio * 100).toFixed(1)} % over ${hits + misses} lookups (target > ${figures.targets.cacheHitRatio * 100} %)`,
    );
    console.log(`cost of a cache hit over the bare route: ${hitCost.toFixed(1)} µs per request at saturation`);
    console.log(`RSS across the ${SOAK}s soak: ${(rssStart / 2 ** 20).toFixed(0)} → ${(rssEnd / 2 ** 20).toFixed(0)} MiB`);
    console.log(`largest sample model (digits-forest-large, 4.3 MB) load time: ${loadSeconds.toFixed(3)} s (target < ${figures.targets.modelLoadSeconds} s)`);
    console.log('\ntargets (ratios are to the bare route measured in this run):');
    console.log(`  cached ≥ 0.8× bare: ${targets.cachedRatio.value} ${targets.cachedRatio.value >= 0.8 ? 'met' : 'MISSED'}`);
    console.log(`  uncached ≥ 0.6× bare: ${targets.uncachedRatio.value} ${targets.uncachedRatio.value >= 0.6 ? 'met' : 'MISSED'}`);
    console.log(`  event-loop delay p99 < 20 ms: ${targets.eventLoopDelayP99Ms.value} ms ${targets.eventLoopDelayP99Ms.value < 20 ? 'met' : 'MISSED'}`);
    console.log(`  cache hit ratio > 0.8: ${zipfHitRatio.toFixed(3)} ${zipfHitRatio > 0.8 ? 'met' : 'MISSED'}`);
    console.log(`  model load < 5 s: ${loadSeconds.toFixed(3)} s ${loadSeconds < 5 ? 'met' : 'MISSED'}`);

    await mkdir(join(ROOT, 'bench/results'), { recursive: true });
    const out = {
      date: new Date().toISOString(),
      durationSeconds: DURATION,
      connections: CONNECTIONS,
      results,
      zipfHitRatio,
      cacheHitCostMicroseconds: hitCost,
      rssSoakMiB: { start: rssStart / 2 ** 20, end: rssEnd / 2 ** 20 },
      largestModelLoadSeconds: loadSeconds,
      targets,
    };
    await writeFile(join(ROOT, 'bench/results/latest.json'), `${JSON.stringify(out, null, 2)}\n`);
    await writeFile(
      join(ROOT, 'bench/results/latest.svg'),
      barChartSvg(
        'Requests per second, relative to a bare Fastify route (same machine, same run)',
        results.map((r) => ({ label: r.name, value: r.requestsPerSecond, note: `${r.ratioToBare}×` })),
      ),
    );
    console.log('\nsaved bench/results/latest.json and bench/results/latest.svg');
  } finally {
    for (const c of children) c.kill('SIGTERM');
    await rm(modelsDir, { recursive: true, force: true });
  }
}

await main();
