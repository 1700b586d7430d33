import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, cpus, loadavg, release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { figures } from '../contract/figures.ts';
import { benchChartSvg } from './chart.ts';
import { rssBytes, runLoad, type BodyMode, type LoadResult } from './load-generator.ts';
import { startFastApi, startMlServer, startRedis, type Peer } from './peers/peers.ts';
import { startBare, startService, type Server } from './servers.ts';

// `make bench`: the service, a bare Fastify route (the ceiling) and the peers (the FastAPI stack
// with 2 workers, in-memory and Redis caches; MLServer over V2) measured side by side in one run,
// on one machine, with one load generator (wrk, bench/lua/load.lua) and the same bodies: cached,
// uncached and batch predictions, in memory and with Redis, V2 infer, on iris-logreg and on
// digits-forest-large (64 features, a 4.3 MB forest). Every scenario runs BENCH_ROUNDS times,
// rounds interleaved (so noise from other work on the machine falls on every server alike); the
// figures are medians. Server CPU per request is read from /proc (the steadiest figure on a shared
// machine). Then: latency at half the maximum rate, the Zipf workload's hit ratio, a soak (RSS over
// time), and what a loaded model costs in memory per inference thread. Results:
// bench/results/latest.json and latest.svg, with every target checked.
//
//   BENCH_DURATION_SECONDS (10)  BENCH_ROUNDS (3)  BENCH_SOAK_SECONDS (600)  BENCH_CONNECTIONS (32)
//   BENCH_ONLY=<regex of scenario ids>  BENCH_SMOKE=1 (seconds, a few scenarios, one peer)
//   BENCH_RESULTS_DIR (bench/results)  BENCH_PHASES (all: rounds,half,zipf,soak,memory)

const ROOT = new URL('..', import.meta.url).pathname;
const SMOKE = process.env.BENCH_SMOKE === '1';
const DURATION = Number(process.env.BENCH_DURATION_SECONDS ?? (SMOKE ? 1 : 10));
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? (SMOKE ? 1 : 3));
const WARMUP = SMOKE ? 1 : 3;
const SOAK = Number(process.env.BENCH_SOAK_SECONDS ?? (SMOKE ? 2 : 600));
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 32);
const THREADS = Number(process.env.BENCH_WRK_THREADS ?? 2);
const RESULTS = process.env.BENCH_RESULTS_DIR ?? join(ROOT, 'bench/results');
const ONLY = process.env.BENCH_ONLY ? new RegExp(process.env.BENCH_ONLY) : undefined;
const PHASES = new Set((process.env.BENCH_PHASES ?? (SMOKE ? 'rounds,half,zipf,soak' : 'rounds,half,zipf,soak,memory')).split(','));

// ---------------------------------------------------------------------------------------------
// Bodies: the same for every server.

interface Reference {
  features: string[];
  samples: Array<{ features: Record<string, number> }>;
}
const reference = (model: string) => JSON.parse(readFileSync(join(ROOT, 'models', `${model}.json`), 'utf8')) as Reference;
const iris = reference('iris-logreg');
const digits = reference('digits-forest-large');
const IRIS = { 'sepal length (cm)': 5.9, 'sepal width (cm)': 3.0, 'petal length (cm)': 5.1, 'petal width (cm)': 1.8 };
/** The first feature's value becomes @N@, a number load.lua makes unique per request. */
const MARK = -123456789;
const marked = (body: unknown) => JSON.stringify(body).replace(String(MARK), '@N@');
const irisRow = (f: Record<string, number>) => iris.features.map((n) => f[n]!);
const digitsRows = Array.from({ length: 64 }, (_, i) => digits.samples[i % digits.samples.length]!.features);
const irisRows = Array.from({ length: 64 }, (_, r) => ({ ...IRIS, 'petal width (cm)': 0.1 + r / 64 }));
const v2 = (rows: number[][]) => ({ inputs: [{ name: 'input', shape: [rows.length, rows[0]!.length], datatype: 'FP32', data: rows.flat() }] });

const bodies = {
  irisCached: JSON.stringify({ features: IRIS }),
  irisDistinct: marked({ features: { ...IRIS, 'sepal length (cm)': MARK } }),
  digitsDistinct: marked({ features: { ...digitsRows[0], [digits.features[0]!]: MARK } }),
  irisBatch: JSON.stringify({ instances: irisRows }),
  digitsBatch: JSON.stringify({ instances: digitsRows }),
  v2Iris: marked(v2([[MARK, 3.0, 5.1, 1.8]])),
  v2IrisBatch: JSON.stringify(v2(irisRows.map(irisRow))),
  v2Digits: marked(v2([digits.features.map((n, i) => (i === 0 ? MARK : digitsRows[0]![n]!))])),
};

// ---------------------------------------------------------------------------------------------
// Servers, started when a selected scenario needs them.

type ServerId = 'bare' | 'bare2' | 'service' | 'serviceInfo' | 'serviceRedis' | 'serviceWorkers' | 'fastapi' | 'fastapiRedis' | 'mlserver';
type Running = Server | Peer;
const pidOf = (s: Running) => ('pid' in s ? s.pid : s.pids()[0]!);

let redis: Peer | undefined;
const redisUrl = async (db: number) => {
  redis ??= await startRedis();
  return redis.baseUrl.replace(/\/0$/, `/${db}`);
};
const FASTAPI_WORKERS = SMOKE ? 1 : 2;

const starters: Record<ServerId, () => Promise<Running>> = {
  bare: () => startBare(1),
  bare2: () => startBare(2),
  service: () => startService({ name: 'service', env: { LOG_LEVEL: 'warn' } }),
  // The default level: one line per request, written to a pipe that is read, as in a container.
  serviceInfo: () => startService({ name: 'service (LOG_LEVEL=info)', env: { LOG_LEVEL: 'info' } }),
  serviceRedis: async () => startService({ name: 'service (Redis)', env: { LOG_LEVEL: 'warn', REDIS_URL: await redisUrl(0) } }),
  // HTTP_WORKERS=2, the way past one event loop (needs Redis); its own Redis database.
  serviceWorkers: async () =>
    startService({ name: 'service (2 HTTP workers, Redis)', env: { LOG_LEVEL: 'warn', REDIS_URL: await redisUrl(2), HTTP_WORKERS: '2' } }),
  fastapi: () => startFastApi({ workers: FASTAPI_WORKERS }),
  fastapiRedis: async () => startFastApi({ workers: FASTAPI_WORKERS, redisUrl: await redisUrl(1) }),
  mlserver: () => startMlServer(),
};
const running = new Map<ServerId, Running>();
async function server(id: ServerId): Promise<Running> {
  let s = running.get(id);
  if (!s) {
    process.stdout.write(`starting ${id}... `);
    s = await starters[id]();
    running.set(id, s);
    console.log(s.baseUrl);
  }
  return s;
}

// ---------------------------------------------------------------------------------------------
// Scenarios.

type Group = 'cached' | 'uncached' | 'heavy' | 'batch' | 'v2';
interface Scenario {
  id: string;
  name: string;
  group: Group;
  server: ServerId;
  path: string;
  body: string;
  mode: BodyMode;
  rows: number;
  /** What the answer's x-cache must say (the REST predict routes). */
  cache?: 'hit' | 'miss';
}

const predict = (m: string) => `/api/v1/predict/${m}`;
const batch = (m: string) => `/api/v1/predict/${m}/batch`;
const infer = (m: string) => `/v2/models/${m}/infer`;
const fastapiName = `FastAPI (${FASTAPI_WORKERS} worker${FASTAPI_WORKERS > 1 ? 's' : ''})`;

const ALL: Scenario[] = [
  {
    id: 'bare',
    name: 'bare Fastify route (ceiling)',
    group: 'cached',
    server: 'bare',
    path: '/bare/iris-logreg',
    body: bodies.irisCached,
    mode: 'fixed',
    rows: 1,
  },
  {
    id: 'bare2',
    name: 'bare Fastify route, 2 processes (ceiling of 2 workers)',
    group: 'cached',
    server: 'bare2',
    path: '/bare/iris-logreg',
    body: bodies.irisCached,
    mode: 'fixed',
    rows: 1,
  },
  {
    id: 'memory.cached',
    name: 'service · memory · cached',
    group: 'cached',
    server: 'service',
    path: predict('iris-logreg'),
    body: bodies.irisCached,
    mode: 'fixed',
    rows: 1,
    cache: 'hit',
  },
  {
    id: 'memory.cached.info',
    name: 'service · memory · cached · LOG_LEVEL=info',
    group: 'cached',
    server: 'serviceInfo',
    path: predict('iris-logreg'),
    body: bodies.irisCached,
    mode: 'fixed',
    rows: 1,
    cache: 'hit',
  },
  {
    id: 'redis.cached',
    name: 'service · Redis · cached',
    group: 'cached',
    server: 'serviceRedis',
    path: predict('iris-logreg'),
    body: bodies.irisCached,
    mode: 'fixed',
    rows: 1,
    cache: 'hit',
  },
  {
    id: 'workers.redis.cached',
    name: 'service · 2 HTTP workers · Redis · cached',
    group: 'cached',
    server: 'serviceWorkers',
    path: predict('iris-logreg'),
    body: bodies.irisCached,
    mode: 'fixed',
    rows: 1,
    cache: 'hit',
  },
  {
    id: 'fastapi.memory.cached',
    name: `${fastapiName} · memory · cached`,
    group: 'cached',
    server: 'fastapi',
    path: predict('iris-logreg'),
    body: bodies.irisCached,
    mode: 'fixed',
    rows: 1,
    cache: 'hit',
  },
  {
    id: 'fastapi.redis.cached',
    name: `${fastapiName} · Redis · cached`,
    group: 'cached',
    server: 'fastapiRedis',
    path: predict('iris-logreg'),
    body: bodies.irisCached,
    mode: 'fixed',
    rows: 1,
    cache: 'hit',
  },

  {
    id: 'memory.uncached',
    name: 'service · memory · uncached',
    group: 'uncached',
    server: 'service',
    path: predict('iris-logreg'),
    body: bodies.irisDistinct,
    mode: 'distinct',
    rows: 1,
    cache: 'miss',
  },
  {
    id: 'redis.uncached',
    name: 'service · Redis · uncached',
    group: 'uncached',
    server: 'serviceRedis',
    path: predict('iris-logreg'),
    body: bodies.irisDistinct,
    mode: 'distinct',
    rows: 1,
    cache: 'miss',
  },
  {
    id: 'workers.redis.uncached',
    name: 'service · 2 HTTP workers · Redis · uncached',
    group: 'uncached',
    server: 'serviceWorkers',
    path: predict('iris-logreg'),
    body: bodies.irisDistinct,
    mode: 'distinct',
    rows: 1,
    cache: 'miss',
  },
  {
    id: 'fastapi.memory.uncached',
    name: `${fastapiName} · memory · uncached`,
    group: 'uncached',
    server: 'fastapi',
    path: predict('iris-logreg'),
    body: bodies.irisDistinct,
    mode: 'distinct',
    rows: 1,
    cache: 'miss',
  },
  {
    id: 'fastapi.redis.uncached',
    name: `${fastapiName} · Redis · uncached`,
    group: 'uncached',
    server: 'fastapiRedis',
    path: predict('iris-logreg'),
    body: bodies.irisDistinct,
    mode: 'distinct',
    rows: 1,
    cache: 'miss',
  },

  {
    id: 'v2.infer',
    name: 'service · V2 infer · 1 row',
    group: 'v2',
    server: 'service',
    path: infer('iris-logreg'),
    body: bodies.v2Iris,
    mode: 'distinct',
    rows: 1,
  },
  {
    id: 'workers.v2.infer',
    name: 'service · 2 HTTP workers · V2 infer · 1 row',
    group: 'v2',
    server: 'serviceWorkers',
    path: infer('iris-logreg'),
    body: bodies.v2Iris,
    mode: 'distinct',
    rows: 1,
  },
  {
    id: 'mlserver.infer',
    name: 'MLServer · V2 infer · 1 row',
    group: 'v2',
    server: 'mlserver',
    path: infer('iris-logreg'),
    body: bodies.v2Iris,
    mode: 'distinct',
    rows: 1,
  },

  {
    id: 'memory.batch64',
    name: 'service · memory · REST batch 64 rows',
    group: 'batch',
    server: 'service',
    path: batch('iris-logreg'),
    body: bodies.irisBatch,
    mode: 'fixed',
    rows: 64,
  },
  {
    id: 'redis.batch64',
    name: 'service · Redis · REST batch 64 rows',
    group: 'batch',
    server: 'serviceRedis',
    path: batch('iris-logreg'),
    body: bodies.irisBatch,
    mode: 'fixed',
    rows: 64,
  },
  {
    id: 'workers.redis.batch64',
    name: 'service · 2 HTTP workers · Redis · REST batch 64 rows',
    group: 'batch',
    server: 'serviceWorkers',
    path: batch('iris-logreg'),
    body: bodies.irisBatch,
    mode: 'fixed',
    rows: 64,
  },
  {
    id: 'fastapi.memory.batch64',
    name: `${fastapiName} · memory · batch 64 rows`,
    group: 'batch',
    server: 'fastapi',
    path: batch('iris-logreg'),
    body: bodies.irisBatch,
    mode: 'fixed',
    rows: 64,
  },
  {
    id: 'fastapi.redis.batch64',
    name: `${fastapiName} · Redis · batch 64 rows`,
    group: 'batch',
    server: 'fastapiRedis',
    path: batch('iris-logreg'),
    body: bodies.irisBatch,
    mode: 'fixed',
    rows: 64,
  },
  {
    id: 'v2.batch64',
    name: 'service · V2 infer · 64 rows',
    group: 'batch',
    server: 'service',
    path: infer('iris-logreg'),
    body: bodies.v2IrisBatch,
    mode: 'fixed',
    rows: 64,
  },
  {
    id: 'workers.v2.batch64',
    name: 'service · 2 HTTP workers · V2 infer · 64 rows',
    group: 'batch',
    server: 'serviceWorkers',
    path: infer('iris-logreg'),
    body: bodies.v2IrisBatch,
    mode: 'fixed',
    rows: 64,
  },
  {
    id: 'mlserver.batch64',
    name: 'MLServer · V2 infer · 64 rows',
    group: 'batch',
    server: 'mlserver',
    path: infer('iris-logreg'),
    body: bodies.v2IrisBatch,
    mode: 'fixed',
    rows: 64,
  },

  {
    id: 'memory.uncached.digits',
    name: 'service · memory · uncached · digits',
    group: 'heavy',
    server: 'service',
    path: predict('digits-forest-large'),
    body: bodies.digitsDistinct,
    mode: 'distinct',
    rows: 1,
    cache: 'miss',
  },
  {
    id: 'fastapi.memory.uncached.digits',
    name: `${fastapiName} · memory · uncached · digits`,
    group: 'heavy',
    server: 'fastapi',
    path: predict('digits-forest-large'),
    body: bodies.digitsDistinct,
    mode: 'distinct',
    rows: 1,
    cache: 'miss',
  },
  {
    id: 'v2.infer.digits',
    name: 'service · V2 infer · 1 row · digits',
    group: 'heavy',
    server: 'service',
    path: infer('digits-forest-large'),
    body: bodies.v2Digits,
    mode: 'distinct',
    rows: 1,
  },
  {
    id: 'mlserver.infer.digits',
    name: 'MLServer · V2 infer · 1 row · digits',
    group: 'heavy',
    server: 'mlserver',
    path: infer('digits-forest-large'),
    body: bodies.v2Digits,
    mode: 'distinct',
    rows: 1,
  },
  {
    id: 'memory.batch64.digits',
    name: 'service · memory · REST batch 64 rows · digits',
    group: 'heavy',
    server: 'service',
    path: batch('digits-forest-large'),
    body: bodies.digitsBatch,
    mode: 'fixed',
    rows: 64,
  },
  {
    id: 'fastapi.memory.batch64.digits',
    name: `${fastapiName} · memory · batch 64 rows · digits`,
    group: 'heavy',
    server: 'fastapi',
    path: batch('digits-forest-large'),
    body: bodies.digitsBatch,
    mode: 'fixed',
    rows: 64,
  },
];

const SMOKE_SCENARIOS = new Set([
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
]);
const scenarios = ALL.filter((s) => (SMOKE ? SMOKE_SCENARIOS.has(s.id) : true) && (ONLY ? ONLY.test(s.id) || s.id === 'bare' : true));

// ---------------------------------------------------------------------------------------------
// One run of one scenario, and the service's own view (event-loop delay) while it runs.

async function loopDelaySampler(s: Running, isService: boolean) {
  let worst = 0;
  const scrape = async () => {
    const text = await (await fetch(`${s.baseUrl}/metrics`, { signal: AbortSignal.timeout(2_000) })).text();
    const v = Number(/^nodejs_eventloop_lag_p99_seconds (\S+)$/m.exec(text)?.[1] ?? NaN);
    if (Number.isFinite(v)) worst = Math.max(worst, v);
  };
  if (isService) await scrape().catch(() => undefined); // resets prom-client's histogram
  return { sample: isService ? () => scrape().catch(() => undefined) : undefined, worstMs: () => (isService ? Number((worst * 1000).toFixed(2)) : undefined) };
}

interface Run extends LoadResult {
  rowsPerSecond: number;
  serverCpuMicrosPerRow: number;
  eventLoopDelayP99Ms?: number;
}

let seed = 1;
async function run(s: Scenario, durationSeconds: number, rate?: number): Promise<Run> {
  const srv = await server(s.server);
  const isService = s.server.startsWith('service');
  const loop = await loopDelaySampler(srv, isService);
  const r = await runLoad({
    url: `${srv.baseUrl}${s.path}`,
    bodies: [s.body],
    mode: s.mode,
    connections: CONNECTIONS,
    threads: THREADS,
    durationSeconds,
    ...(rate ? { rate } : {}),
    seed: seed++ % 1000,
    serverPid: pidOf(srv),
    ...(loop.sample ? { sample: loop.sample, sampleMs: 1_000 } : {}),
  });
  const loopMs = loop.worstMs();
  return {
    ...r,
    rowsPerSecond: r.requestsPerSecond * s.rows,
    serverCpuMicrosPerRow: Number((r.serverCpuMicrosPerRequest / s.rows).toFixed(2)),
    ...(loopMs !== undefined ? { eventLoopDelayP99Ms: loopMs } : {}),
  };
}

/** One request of the scenario by hand: it must answer 200 (and x-cache as expected) before it is measured. */
async function preflight(s: Scenario): Promise<void> {
  const srv = await server(s.server);
  const send = async (n: number) =>
    fetch(`${srv.baseUrl}${s.path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: s.body.replace('@N@', `3.${n}`),
      signal: AbortSignal.timeout(10_000),
    });
  const n = Math.floor(Math.random() * 1e9);
  let res = await send(n);
  // Several worker processes (the FastAPI stack) each keep their own in-memory cache: the same
  // request is a hit once the worker it lands on has answered it, so repeat it a few times.
  for (let i = 0; s.cache === 'hit' && i < 8 && res.status === 200 && res.headers.get('x-cache') !== 'hit'; i++) {
    await res.arrayBuffer();
    res = await send(n);
  }
  const text = await res.text();
  if (res.status !== 200) throw new Error(`${s.id}: ${res.status} ${text.slice(0, 500)}`);
  if (s.cache && res.headers.get('x-cache') !== s.cache) throw new Error(`${s.id}: x-cache is ${res.headers.get('x-cache')}, expected ${s.cache}`);
}

const median = (xs: number[]) => {
  const v = xs.filter(Number.isFinite).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const m = v.length >> 1;
  return v.length % 2 ? v[m]! : (v[m - 1]! + v[m]!) / 2;
};

function medianRun(runs: Run[]): Run {
  const keys = Object.keys(runs[0]!) as Array<keyof Run>;
  const out = {} as Record<string, number>;
  for (const k of keys) out[k] = Number(median(runs.map((r) => r[k] as number)).toFixed(2));
  out.requests = runs.reduce((n, r) => n + r.requests, 0);
  out.errors = runs.reduce((n, r) => n + r.errors, 0);
  out.peakRssMiB = Math.max(...runs.map((r) => r.peakRssMiB));
  if (runs[0]!.eventLoopDelayP99Ms !== undefined) out.eventLoopDelayP99Ms = Math.max(...runs.map((r) => r.eventLoopDelayP99Ms ?? 0));
  return out as unknown as Run;
}

// ---------------------------------------------------------------------------------------------
// The other phases.

/** Requests of the Zipf workload: 10,000 distinct wine feature vectors, a few asked often and most rarely. */
function zipfBodies(): string[] {
  const rows = reference('wine-forest').samples.map((s) => s.features);
  return Array.from({ length: SMOKE ? 1_000 : 10_000 }, (_, r) => {
    const row = rows[r % rows.length]!;
    return JSON.stringify({ features: { ...row, proline: row.proline! + Math.floor(r / rows.length) } });
  });
}

async function metric(base: string, re: RegExp): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text();
  return Number(re.exec(text)?.[1] ?? 0);
}

async function zipfPhase() {
  const srv = await server('service');
  const hit = /cache_requests_total\{model="wine-forest",result="hit"\} (\d+)/;
  const miss = /cache_requests_total\{model="wine-forest",result="miss"\} (\d+)/;
  const [h0, m0] = [await metric(srv.baseUrl, hit), await metric(srv.baseUrl, miss)];
  const r = await runLoad({
    url: `${srv.baseUrl}${predict('wine-forest')}`,
    bodies: zipfBodies(),
    mode: 'zipf',
    connections: CONNECTIONS,
    threads: THREADS,
    durationSeconds: DURATION,
    seed: seed++,
    serverPid: pidOf(srv),
  });
  const hits = (await metric(srv.baseUrl, hit)) - h0;
  const misses = (await metric(srv.baseUrl, miss)) - m0;
  return { ...r, lookups: hits + misses, hitRatio: Number((hits / (hits + misses)).toFixed(4)) };
}

/** Uncached predictions for SOAK seconds on a fresh service, its RSS sampled: flat, or growing? */
async function soakPhase() {
  const srv = await startService({ name: 'service (soak)', env: { LOG_LEVEL: 'warn' } });
  try {
    const samples: Array<[number, number]> = [];
    const t0 = performance.now();
    const sampleMs = Math.max(1_000, Math.min(10_000, (SOAK * 1000) / 60));
    const timer = setInterval(() => samples.push([Math.round((performance.now() - t0) / 1000), Math.round(rssBytes(srv.pid) / 2 ** 20)]), sampleMs);
    const r = await runLoad({
      url: `${srv.baseUrl}${predict('iris-logreg')}`,
      bodies: [bodies.irisDistinct],
      mode: 'distinct',
      connections: CONNECTIONS,
      threads: THREADS,
      durationSeconds: SOAK,
      seed: seed++,
      serverPid: srv.pid,
    });
    clearInterval(timer);
    samples.push([Math.round((performance.now() - t0) / 1000), Math.round(rssBytes(srv.pid) / 2 ** 20)]);
    // Flat: past the first tenth (warm-up: JIT, the cache and the prediction log filling to their bounds), RSS grows by under 10 %.
    const settled = samples.find(([t]) => t >= SOAK / 10) ?? samples[0]!;
    const end = samples.at(-1)!;
    const peak = Math.max(...samples.map(([, m]) => m));
    return {
      seconds: SOAK,
      requests: r.requests,
      requestsPerSecond: r.requestsPerSecond,
      errors: r.errors,
      samples,
      settledMiB: settled[1],
      endMiB: end[1],
      peakMiB: peak,
      growth: Number((end[1] / settled[1] - 1).toFixed(3)),
    };
  } finally {
    await srv.stop();
  }
}

/**
 * What a loaded model costs in memory: the service started with no model, with iris-logreg alone
 * and with digits-forest-large alone, each with 1 and 2 inference threads; RSS once ready and idle.
 * A model's cost per thread is what one more thread adds with it loaded, less what a thread adds without it.
 */
async function memoryPhase() {
  const dirs: Record<string, string> = {};
  const base = await mkdtemp(join(tmpdir(), 'bench-samples-'));
  try {
    for (const set of ['none', 'iris-logreg', 'digits-forest-large']) {
      const dir = join(base, set);
      await mkdir(dir);
      if (set !== 'none') for (const ext of ['onnx', 'json']) await copyFile(join(ROOT, 'models', `${set}.${ext}`), join(dir, `${set}.${ext}`));
      dirs[set] = dir;
    }
    const rss: Record<string, Record<number, number>> = {};
    for (const set of Object.keys(dirs)) {
      rss[set] = {};
      for (const threads of [1, 2]) {
        const srv = await startService({
          name: `service (${set}, ${threads} threads)`,
          sampleModelsDir: dirs[set]!,
          env: { LOG_LEVEL: 'warn', INFERENCE_THREADS: String(threads) },
        });
        try {
          // One prediction through each model, so sessions have run once, then a moment's rest.
          if (set !== 'none') {
            const ref = reference(set);
            await fetch(`${srv.baseUrl}${predict(set)}`, {
              method: 'POST',
              headers: { 'content-type': 'application/json' },
              body: JSON.stringify({ features: ref.samples[0]!.features }),
            });
          }
          await new Promise((r) => setTimeout(r, 1_500));
          rss[set]![threads] = Math.round(rssBytes(srv.pid) / 2 ** 20);
        } finally {
          await srv.stop();
        }
      }
    }
    const perThread = (set: string) => rss[set]![2]! - rss[set]![1]! - (rss.none![2]! - rss.none![1]!);
    return {
      rssMiB: rss,
      threadWithoutModelsMiB: rss.none![2]! - rss.none![1]!,
      models: Object.fromEntries(
        ['iris-logreg', 'digits-forest-large'].map((m) => [
          m,
          {
            fileBytes: readFileSync(join(ROOT, 'models', `${m}.onnx`)).length,
            withOneThreadMiB: rss[m]![1]! - rss.none![1]!,
            withTwoThreadsMiB: rss[m]![2]! - rss.none![2]!,
            perThreadMiB: perThread(m),
          },
        ]),
      ),
    };
  } finally {
    await rm(base, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// Targets.

interface Target {
  id: string;
  what: string;
  value: number;
  target: number;
  /** 'min': value ≥ target; 'max': value ≤ target (or < for strict). */
  kind: 'min' | 'max' | 'below';
  met: boolean;
}

function targetsOf(
  m: Map<string, Run>,
  half: Map<string, Run>,
  soak: Awaited<ReturnType<typeof soakPhase>> | undefined,
  zipf: Awaited<ReturnType<typeof zipfPhase>> | undefined,
  loadSeconds: number,
): Target[] {
  const out: Target[] = [];
  const add = (id: string, what: string, value: number | undefined, kind: Target['kind'], target: number) => {
    if (value === undefined || !Number.isFinite(value)) return;
    const v = Number(value.toFixed(3));
    out.push({ id, what, value: v, target, kind, met: kind === 'min' ? v >= target : kind === 'max' ? v <= target : v < target });
  };
  const rps = (id: string) => m.get(id)?.requestsPerSecond;
  const rows = (id: string) => m.get(id)?.rowsPerSecond;
  const cpu = (id: string) => m.get(id)?.serverCpuMicrosPerRow;
  const ratio = (a: number | undefined, b: number | undefined) => (a === undefined || b === undefined ? undefined : a / b);
  add('cached.ratio', 'memory · cached req/s ÷ bare', ratio(rps('memory.cached'), rps('bare')), 'min', 0.8);
  add('cached.cpu', 'memory · cached server CPU/req ÷ bare', ratio(cpu('memory.cached'), cpu('bare')), 'max', 1.3);
  add('uncached.ratio', 'memory · uncached req/s ÷ bare', ratio(rps('memory.uncached'), rps('bare')), 'min', 0.6);
  add('v2.ratio', 'V2 infer 1 row req/s ÷ bare', ratio(rps('v2.infer'), rps('bare')), 'min', 0.7);
  add('redis.cached.ratio', 'Redis · cached req/s ÷ bare', ratio(rps('redis.cached'), rps('bare')), 'min', 0.6);
  add('redis.uncached.ratio', 'Redis · uncached req/s ÷ bare', ratio(rps('redis.uncached'), rps('bare')), 'min', 0.45);
  add('batch.cpu', 'REST batch 64 server CPU/row ÷ V2 64 rows', ratio(cpu('memory.batch64'), cpu('v2.batch64')), 'max', 1.5);
  add('batch.fastapi4', 'REST batch 64 rows/s ÷ FastAPI', ratio(rows('memory.batch64'), rows('fastapi.memory.batch64')), 'min', 4);
  for (const [ours, theirs, what] of [
    ['memory.cached', 'fastapi.memory.cached', 'memory · cached'],
    ['memory.uncached', 'fastapi.memory.uncached', 'memory · uncached'],
    ['memory.batch64', 'fastapi.memory.batch64', 'memory · batch 64 (rows/s)'],
    ['redis.cached', 'fastapi.redis.cached', 'Redis · cached'],
    ['redis.uncached', 'fastapi.redis.uncached', 'Redis · uncached'],
    ['redis.batch64', 'fastapi.redis.batch64', 'Redis · batch 64 (rows/s)'],
    // HTTP_WORKERS=2 (two event loops) against the same peers.
    ['workers.redis.cached', 'fastapi.redis.cached', '2 HTTP workers · Redis · cached'],
    ['workers.redis.uncached', 'fastapi.redis.uncached', '2 HTTP workers · Redis · uncached'],
    ['workers.redis.batch64', 'fastapi.redis.batch64', '2 HTTP workers · Redis · batch 64 (rows/s)'],
  ] as const)
    add(`fastapi.${ours}`, `${what} ÷ FastAPI`, ratio(rows(ours), rows(theirs)), 'min', 3);
  // HTTP_WORKERS=2 against the same ceiling in two processes.
  add('workers.cached.ratio', '2 HTTP workers · Redis · cached req/s ÷ bare, 2 processes', ratio(rps('workers.redis.cached'), rps('bare2')), 'min', 0.6);
  add('workers.uncached.ratio', '2 HTTP workers · Redis · uncached req/s ÷ bare, 2 processes', ratio(rps('workers.redis.uncached'), rps('bare2')), 'min', 0.45);
  add('workers.v2.ratio', '2 HTTP workers · V2 infer req/s ÷ bare, 2 processes', ratio(rps('workers.v2.infer'), rps('bare2')), 'min', 0.7);
  add('mlserver.workers.infer', '2 HTTP workers · V2 infer 1 row ÷ MLServer', ratio(rps('workers.v2.infer'), rps('mlserver.infer')), 'min', 10);
  add(
    'mlserver.workers.batch64',
    '2 HTTP workers · V2 infer 64 rows (rows/s) ÷ MLServer',
    ratio(rows('workers.v2.batch64'), rows('mlserver.batch64')),
    'min',
    10,
  );
  add('mlserver.infer', 'V2 infer 1 row ÷ MLServer', ratio(rps('v2.infer'), rps('mlserver.infer')), 'min', 10);
  add('mlserver.batch64', 'V2 infer 64 rows (rows/s) ÷ MLServer', ratio(rows('v2.batch64'), rows('mlserver.batch64')), 'min', 10);
  for (const [id, r] of half) add(`half.${id}`, `p99 ms at half the maximum rate · ${id}`, r.p99Ms, 'max', 5);
  const loops = [...m.values()].map((r) => r.eventLoopDelayP99Ms).filter((v): v is number => v !== undefined);
  if (loops.length) add('loop', 'event-loop delay p99 ms at saturation (worst scenario)', Math.max(...loops), 'below', 20);
  if (soak) add('soak', `RSS growth over the ${soak.seconds} s soak, after its first tenth`, soak.growth, 'max', 0.1);
  if (zipf) add('zipf', 'cache hit ratio, Zipf workload', zipf.hitRatio, 'min', figures.targets.cacheHitRatio);
  add('load', 'largest sample model load s', loadSeconds, 'below', figures.targets.modelLoadSeconds);
  return out;
}

// ---------------------------------------------------------------------------------------------

function machine() {
  let wrk = 'wrk';
  try {
    wrk = execFileSync('wrk', ['-v'], { encoding: 'utf8' }).split('\n')[0]!;
  } catch (err) {
    wrk = ((err as { stdout?: string }).stdout ?? 'wrk').split('\n')[0]!;
  }
  return {
    cores: availableParallelism(),
    cpu: cpus()[0]?.model ?? 'unknown',
    kernel: release(),
    node: process.version,
    loadGenerator: `wrk ${/(\d+\.\d+\.\d+)/.exec(wrk)?.[1] ?? ''}`.trim(),
    loadAverageAtStart: loadavg().map((x) => Number(x.toFixed(2))),
  };
}

const fmt = (n: number | undefined, d = 0) =>
  n === undefined || !Number.isFinite(n) ? '-' : n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });

function printTable(rows: Array<{ name: string; r: Run; scenario: Scenario }>) {
  console.log(
    `\n${'scenario'.padEnd(50)} ${'req/s'.padStart(8)} ${'rows/s'.padStart(9)} ${'p50 ms'.padStart(7)} ${'p99 ms'.padStart(7)} ${'CPU µs/req'.padStart(10)} ${'CPU µs/row'.padStart(10)} ${'srv cores'.padStart(9)} ${'wrk cores'.padStart(9)} ${'loop p99'.padStart(8)} ${'RSS MiB'.padStart(7)} ${'errors'.padStart(6)}`,
  );
  for (const { name, r } of rows)
    console.log(
      `${name.padEnd(50)} ${fmt(r.requestsPerSecond).padStart(8)} ${fmt(r.rowsPerSecond).padStart(9)} ${fmt(r.p50Ms, 2).padStart(7)} ${fmt(r.p99Ms, 2).padStart(7)} ${fmt(r.serverCpuMicrosPerRequest, 1).padStart(10)} ${fmt(r.serverCpuMicrosPerRow, 2).padStart(10)} ${fmt(r.serverCores, 2).padStart(9)} ${fmt(r.loadGeneratorCores, 2).padStart(9)} ${(r.eventLoopDelayP99Ms === undefined ? '-' : fmt(r.eventLoopDelayP99Ms, 1)).padStart(8)} ${fmt(r.peakRssMiB).padStart(7)} ${fmt(r.errors).padStart(6)}`,
    );
}

async function main() {
  const started = new Date();
  const host = machine();
  console.log(
    `bench: ${scenarios.length} scenarios × ${ROUNDS} rounds of ${DURATION} s, wrk ${THREADS} threads ${CONNECTIONS} connections, ${host.cores} cores, load average ${host.loadAverageAtStart.join(' ')}`,
  );
  const perScenario = new Map<string, Run[]>(scenarios.map((s) => [s.id, []]));
  const half = new Map<string, Run>();
  let zipf: Awaited<ReturnType<typeof zipfPhase>> | undefined;
  let soak: Awaited<ReturnType<typeof soakPhase>> | undefined;
  let memory: Awaited<ReturnType<typeof memoryPhase>> | undefined;
  let loadSeconds = NaN;
  try {
    for (const s of scenarios) await preflight(s);
    if (PHASES.has('rounds')) {
      // Warm-up: JIT, sessions, caches filled; not measured.
      for (const s of scenarios) await run(s, WARMUP);
      for (let round = 1; round <= ROUNDS; round++) {
        for (const s of scenarios) {
          const r = await run(s, DURATION);
          perScenario.get(s.id)!.push(r);
          console.log(
            `round ${round} ${s.id.padEnd(32)} ${fmt(r.requestsPerSecond).padStart(7)} req/s ${fmt(r.rowsPerSecond).padStart(9)} rows/s  p99 ${fmt(r.p99Ms, 2)} ms  ${fmt(r.serverCpuMicrosPerRequest, 1)} µs CPU/req  errors ${r.errors}`,
          );
        }
      }
    }
    const medians = new Map([...perScenario].filter(([, runs]) => runs.length > 0).map(([id, runs]) => [id, medianRun(runs)]));

    if (PHASES.has('half')) {
      // Latency at half the maximum rate: a steady offered load, not saturation.
      for (const id of ['memory.cached', 'memory.uncached', 'redis.cached', 'redis.uncached']) {
        const s = scenarios.find((x) => x.id === id);
        const max = medians.get(id)?.requestsPerSecond;
        if (!s || !max) continue;
        const runs: Run[] = [];
        for (let round = 0; round < ROUNDS; round++) runs.push(await run(s, DURATION, Math.round(max / 2)));
        half.set(id, { ...medianRun(runs), offeredPerSecond: Math.round(max / 2) } as Run);
        console.log(
          `half rate ${id.padEnd(24)} offered ${fmt(max / 2)} req/s, answered ${fmt(half.get(id)!.requestsPerSecond)}  p99 ${fmt(half.get(id)!.p99Ms, 2)} ms`,
        );
      }
    }
    if (PHASES.has('zipf') && (!ONLY || ONLY.test('zipf'))) {
      zipf = await zipfPhase();
      console.log(`zipf: hit ratio ${(zipf.hitRatio * 100).toFixed(1)} % over ${zipf.lookups} lookups, ${fmt(zipf.requestsPerSecond)} req/s`);
    }
    if (running.has('service'))
      loadSeconds = await metric(running.get('service')!.baseUrl, /model_load_duration_seconds_sum\{model="digits-forest-large",version="1"\} (\S+)/);
    if (PHASES.has('soak') && (!ONLY || ONLY.test('soak'))) {
      // Only the soak's service runs during the soak (idle servers cost little, but nothing is left to chance).
      for (const s of running.values()) await s.stop();
      running.clear();
      soak = await soakPhase();
      console.log(
        `soak: ${soak.seconds} s, RSS ${soak.settledMiB} → ${soak.endMiB} MiB after the first tenth (peak ${soak.peakMiB}), ${fmt(soak.requestsPerSecond)} req/s`,
      );
    }
    if (PHASES.has('memory') && (!ONLY || ONLY.test('memory'))) {
      memory = await memoryPhase();
      console.log(`memory: ${JSON.stringify(memory.models)}; a thread without models ${memory.threadWithoutModelsMiB} MiB`);
    }

    const table = scenarios.filter((s) => medians.has(s.id)).map((s) => ({ name: s.name, r: medians.get(s.id)!, scenario: s }));
    console.log(`\nmedians of ${ROUNDS} rounds, ${DURATION} s each:`);
    printTable(table);
    if (half.size) {
      console.log('\nat half the maximum rate:');
      printTable(
        [...half].map(([id, r]) => ({
          name: `${id} @ ${fmt((r as Run & { offeredPerSecond: number }).offeredPerSecond)}/s`,
          r,
          scenario: scenarios.find((s) => s.id === id)!,
        })),
      );
    }
    const targets = targetsOf(medians, half, soak, zipf, loadSeconds);
    console.log('\ntargets:');
    for (const t of targets)
      console.log(`  ${t.met ? 'met   ' : 'MISSED'} ${t.what}: ${t.value} (target ${t.kind === 'min' ? '≥' : t.kind === 'max' ? '≤' : '<'} ${t.target})`);

    const out = {
      date: started.toISOString(),
      machine: host,
      settings: {
        durationSeconds: DURATION,
        rounds: ROUNDS,
        warmupSeconds: WARMUP,
        connections: CONNECTIONS,
        wrkThreads: THREADS,
        soakSeconds: SOAK,
        smoke: SMOKE,
        only: ONLY?.source,
      },
      scenarios: scenarios
        .filter((s) => medians.has(s.id))
        .map((s) => ({
          id: s.id,
          name: s.name,
          group: s.group,
          server: s.server,
          path: s.path,
          rowsPerRequest: s.rows,
          mode: s.mode,
          median: medians.get(s.id),
          rounds: perScenario.get(s.id),
        })),
      halfRate: Object.fromEntries(half),
      zipf,
      soak,
      memory,
      largestModelLoadSeconds: loadSeconds,
      targets,
    };
    await mkdir(RESULTS, { recursive: true });
    await writeFile(join(RESULTS, 'latest.json'), `${JSON.stringify(out, null, 2)}\n`);
    await writeFile(join(RESULTS, 'latest.svg'), benchChartSvg(out));
    console.log(`\nsaved ${join(RESULTS, 'latest.json')} and latest.svg`);
  } finally {
    for (const s of running.values()) await s.stop().catch(() => undefined);
    await redis?.stop().catch(() => undefined);
  }
}

await main();
