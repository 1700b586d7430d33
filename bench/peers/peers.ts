import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// Baseline peers for `make bench`: the specification's own stack (FastAPI + uvicorn +
// onnxruntime, bench/peers/fastapi_app.py) and MLServer (bench/peers/mlserver/, a custom
// onnxruntime runtime over the Open Inference Protocol), each started as a child process on a
// free loopback port, plus a throwaway redis-server for the FastAPI peer's Redis cache.
//
//   const peer = await startFastApi({ workers: 2, redisUrl });
//   ... load `${peer.baseUrl}${fastApiRoutes.predict('iris-logreg')}` ...
//   const cpu = peer.cpuSeconds();   // user+sys of the server and its workers, so far
//   await peer.stop();
//
// Every wait is bounded; every process is killed when stop() is called or, failing that, when
// this Node process exits (and, via PR_SET_PDEATHSIG, when it is killed outright).

const ROOT = new URL('../..', import.meta.url).pathname;
const PEERS = join(ROOT, 'bench/peers');
const FASTAPI_VENV = join(ROOT, '.cache/venv-bench-peers');
const MLSERVER_VENV = join(ROOT, '.cache/venv-bench-mlserver');
const INSTALL_TIMEOUT_MS = 15 * 60_000;
const STOP_GRACE_MS = 5_000;

export interface Peer {
  name: string;
  /** http://127.0.0.1:PORT (redis://127.0.0.1:PORT/0 for Redis) */
  baseUrl: string;
  /** The server process and all its worker children (for CPU accounting). */
  pids(): number[];
  /** user+sys CPU seconds so far of all of pids(), from /proc/<pid>/stat. */
  cpuSeconds(): number;
  stop(): Promise<void>;
}

export interface FastApiOptions {
  workers?: 1 | 2;
  /** redis://127.0.0.1:PORT/0: cache through redis.asyncio; unset: the in-process cache. */
  redisUrl?: string;
  /** Where onnxruntime runs: inline in the async handler (default, measured faster) or the threadpool. */
  inference?: 'inline' | 'threadpool';
  /** Sample models to load (default: all of models/). */
  models?: string[];
  cacheTtlSeconds?: number;
  startTimeoutMs?: number;
}

export interface MlServerOptions {
  /** MLServer's parallel_workers: 0 (default, measured fastest here) runs inference in the server process. */
  parallelWorkers?: number;
  startTimeoutMs?: number;
}

/** Paths for the FastAPI peer: the same routes and bodies as the project's. */
export const fastApiRoutes = {
  health: '/health',
  predict: (model: string) => `/api/v1/predict/${encodeURIComponent(model)}`,
  batch: (model: string) => `/api/v1/predict/${encodeURIComponent(model)}/batch`,
};

/** Paths for the MLServer peer (Open Inference Protocol / KServe V2 REST). */
export const v2Routes = {
  ready: '/v2/health/ready',
  model: (model: string) => `/v2/models/${encodeURIComponent(model)}`,
  infer: (model: string) => `/v2/models/${encodeURIComponent(model)}/infer`,
};

/** The project's predict body: `{"features": {name: value}}` (FastAPI takes it unchanged). */
export const predictBody = (features: Record<string, number>) => ({ features });
/** The project's batch body: `{"instances": [features, ...]}` (FastAPI takes it unchanged). */
export const batchBody = (instances: Array<Record<string, number>>) => ({ instances });

export interface V2InferRequest {
  inputs: Array<{ name: string; shape: [number, number]; datatype: 'FP32'; data: number[] }>;
}
/**
 * A V2 infer body: rows of feature values in the model's column order, as one FP32 [N, features]
 * tensor; the sample models' input is named "input". The same body the project's /v2 takes.
 */
export function v2InferBody(rows: number[][], inputName = 'input'): V2InferRequest {
  const width = rows[0]?.length ?? 0;
  return { inputs: [{ name: inputName, shape: [rows.length, width], datatype: 'FP32', data: rows.flat() }] };
}

/** Named features → a row in the model's column order, for V2 bodies. */
export function toRow(features: Record<string, number>, names: string[]): number[] {
  return names.map((n) => {
    const v = features[n];
    if (v === undefined) throw new Error(`feature ${n} missing`);
    return v;
  });
}

// ---------------------------------------------------------------------------------------------

/** Runs bench/peers/install.sh (a no-op when the venvs are up to date), bounded. */
async function installPeers(which: 'fastapi' | 'mlserver' | 'all' = 'all'): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const child = execFile('bash', [join(PEERS, 'install.sh'), which], { timeout: INSTALL_TIMEOUT_MS, maxBuffer: 16 * 2 ** 20 }, (err, _stdout, stderr) => {
      if (err) reject(new Error(`bench/peers/install.sh ${which} failed: ${err.message}\n${stderr.slice(-4000)}`));
      else resolve();
    });
    child.stdin?.end();
  });
}

/** A free TCP port on 127.0.0.1 (the kernel's choice; released just before use). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => (port ? resolve(port) : reject(new Error('no port'))));
    });
  });
}

let clockTicks = 0;
function ticksPerSecond(): number {
  if (!clockTicks) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/** /proc/<pid>/stat fields after the "(comm)" one: [state, ppid, ...]; undefined if gone. */
function statFields(pid: number): string[] | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return text.slice(text.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** pid and all its descendants that are alive now. */
export function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const fields = statFields(Number(entry));
    if (!fields || fields[0] === 'Z') continue;
    const ppid = Number(fields[1]);
    const list = children.get(ppid);
    if (list) list.push(Number(entry));
    else children.set(ppid, [Number(entry)]);
  }
  if (!statFields(root)) return [];
  const out = [root];
  for (let i = 0; i < out.length; i++) out.push(...(children.get(out[i]!) ?? []));
  return out;
}

/** user+sys CPU seconds of these processes (fields 14 and 15 of /proc/<pid>/stat). */
export function cpuSecondsOf(pids: number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    const f = statFields(pid);
    // After "(comm) ", index 0 is field 3 (state): utime is field 14 → index 11, stime → 12.
    if (f) ticks += Number(f[11]) + Number(f[12]);
  }
  return ticks / ticksPerSecond();
}

// Sets PR_SET_PDEATHSIG (kept across exec) so the server dies with this Node process, checks the
// parent is still the one that started it, then becomes the server.
const LAUNCHER = [
  'import ctypes, os, signal, sys',
  'ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))',
  'sys.exit(1) if os.getppid() != int(sys.argv[1]) else None',
  'os.execv(sys.argv[2], sys.argv[2:])',
].join('\n');

const live = new Set<ChildProcess>();
let exitHookInstalled = false;
function killAllOnExit(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const child of live) {
      if (child.pid === undefined) continue;
      for (const pid of processTree(child.pid).reverse()) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }
  });
}

interface Started {
  child: ChildProcess;
  /** The last lines the server printed, for error messages. */
  output(): string;
  exited: Promise<number | null>;
}

function launch(python: string, command: string[], env: Record<string, string>, cwd: string): Started {
  killAllOnExit();
  const child = spawn(python, ['-c', LAUNCHER, String(process.pid), ...command], {
    cwd,
    env: { ...process.env, PYTHONUNBUFFERED: '1', PYTHONDONTWRITEBYTECODE: '1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(child);
  let tail = '';
  const keep = (chunk: Buffer) => {
    tail = (tail + chunk.toString('utf8')).slice(-8192);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code, signal) => {
      live.delete(child);
      resolve(code ?? (signal ? 128 : null));
    });
    child.once('error', (err) => {
      keep(Buffer.from(`\nspawn failed: ${err.message}\n`));
      live.delete(child);
      resolve(-1);
    });
  });
  return { child, output: () => tail, exited };
}

/** GET on a fresh connection (no keep-alive, so a multi-worker server may answer from any worker). */
function get(url: string, timeoutMs = 1_000): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'GET', agent: false, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls ready() until true; fails at the deadline or as soon as the server exits. */
async function waitUntil(name: string, started: Started, ready: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let exitCode: number | null | undefined;
  void started.exited.then((c) => (exitCode = c));
  while (Date.now() < deadline) {
    if (exitCode !== undefined) throw new Error(`${name} exited (${exitCode}) before it was ready:\n${started.output()}`);
    try {
      if (await ready()) return;
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
  throw new Error(`${name} not ready after ${timeoutMs} ms:\n${started.output()}`);
}

function makePeer(name: string, baseUrl: string, started: Started, cleanup?: () => Promise<void>): Peer {
  const root = started.child.pid!;
  let stopped: Promise<void> | undefined;
  return {
    name,
    baseUrl,
    pids: () => processTree(root),
    cpuSeconds: () => cpuSecondsOf(processTree(root)),
    stop: () =>
      (stopped ??= (async () => {
        const tree = processTree(root);
        const signal = (pids: number[], sig: NodeJS.Signals) => {
          for (const pid of pids) {
            try {
              process.kill(pid, sig);
            } catch {
              // already gone
            }
          }
        };
        signal([root], 'SIGTERM');
        const graceful = await Promise.race([started.exited.then(() => true), sleep(STOP_GRACE_MS).then(() => false)]);
        // Whatever is left of the tree (workers of a server killed hard, or one that did not stop).
        signal(graceful ? tree.slice(1) : tree, 'SIGKILL');
        await Promise.race([started.exited, sleep(STOP_GRACE_MS)]);
        for (let i = 0; i < 50 && tree.some((pid) => statFields(pid) && statFields(pid)![0] !== 'Z'); i++) await sleep(100);
        await cleanup?.();
      })()),
  };
}

/** The FastAPI peer: uvicorn (uvloop, httptools) with 1 or 2 workers, installed if needed. */
export async function startFastApi(options: FastApiOptions = {}): Promise<Peer> {
  const workers = options.workers ?? 1;
  await installPeers('fastapi');
  const port = await freePort();
  const readyDir = await mkdtemp(join(tmpdir(), 'fastapi-peer-'));
  const python = join(FASTAPI_VENV, 'bin/python');
  const env: Record<string, string> = {
    PEER_DIE_WITH_PARENT: '1',
    PEER_READY_DIR: readyDir,
    PEER_INFERENCE: options.inference ?? 'inline',
    CACHE_TTL_SECONDS: String(options.cacheTtlSeconds ?? 60),
    // One thread each for the numeric libraries: the workers are the parallelism.
    OMP_NUM_THREADS: '1',
    OPENBLAS_NUM_THREADS: '1',
  };
  if (options.redisUrl) env.REDIS_URL = options.redisUrl;
  if (options.models) env.PEER_MODELS = options.models.join(',');
  const args = [
    python,
    '-m',
    'uvicorn',
    'fastapi_app:app',
    '--app-dir',
    PEERS,
    '--host',
    '127.0.0.1',
    '--port',
    String(port),
    '--workers',
    String(workers),
    '--loop',
    'uvloop',
    '--http',
    'httptools',
    '--no-access-log',
    '--log-level',
    'warning',
  ];
  // Never inherit a REDIS_URL from the caller's environment: the option decides.
  const started = launch(python, args, { REDIS_URL: '', ...env }, PEERS);
  const name = `fastapi (${workers} worker${workers > 1 ? 's' : ''}, ${options.redisUrl ? 'redis' : 'memory'} cache)`;
  const baseUrl = `http://127.0.0.1:${port}`;
  const peer = makePeer(name, baseUrl, started, () => rm(readyDir, { recursive: true, force: true }));
  try {
    // Ready when every worker has loaded its models (each writes PEER_READY_DIR/<pid>) and /health answers.
    await waitUntil(
      name,
      started,
      async () => (await readdir(readyDir)).length >= workers && (await get(`${baseUrl}/health`)).status === 200,
      options.startTimeoutMs ?? 60_000,
    );
  } catch (err) {
    await peer.stop();
    throw err;
  }
  return peer;
}

/** The MLServer peer: iris-logreg and digits-forest-large over V2 REST, installed if needed. */
export async function startMlServer(options: MlServerOptions = {}): Promise<Peer> {
  await installPeers('mlserver');
  const [http, grpc, metrics] = [await freePort(), await freePort(), await freePort()];
  // MLServer writes .metrics/ and .envs/ into its working directory: keep them out of the repo.
  const cwd = await mkdtemp(join(tmpdir(), 'mlserver-peer-'));
  const folder = join(PEERS, 'mlserver');
  const python = join(MLSERVER_VENV, 'bin/python');
  const env: Record<string, string> = {
    PYTHONPATH: folder,
    MLSERVER_HOST: '127.0.0.1',
    MLSERVER_HTTP_PORT: String(http),
    MLSERVER_GRPC_PORT: String(grpc),
    MLSERVER_METRICS_PORT: String(metrics),
    MLSERVER_PARALLEL_WORKERS: String(options.parallelWorkers ?? 0),
    OMP_NUM_THREADS: '1',
    OPENBLAS_NUM_THREADS: '1',
  };
  const started = launch(python, [join(MLSERVER_VENV, 'bin/mlserver'), 'start', folder], env, cwd);
  const name = `mlserver (parallel_workers=${options.parallelWorkers ?? 0})`;
  const baseUrl = `http://127.0.0.1:${http}`;
  const peer = makePeer(name, baseUrl, started, () => rm(cwd, { recursive: true, force: true }));
  try {
    await waitUntil(
      name,
      started,
      async () => {
        for (const model of ['iris-logreg', 'digits-forest-large']) {
          if ((await get(`${baseUrl}${v2Routes.model(model)}/ready`)).status !== 200) return false;
        }
        return true;
      },
      options.startTimeoutMs ?? 120_000,
    );
  } catch (err) {
    await peer.stop();
    throw err;
  }
  return peer;
}

/** A throwaway redis-server on a free loopback port, no persistence. baseUrl is its redis:// URL. */
export async function startRedis(options: { startTimeoutMs?: number } = {}): Promise<Peer> {
  const server = ['/usr/bin/redis-server', '/usr/local/bin/redis-server'].find((p) => existsSync(p));
  if (!server) throw new Error('redis-server is not installed (Debian: apt-get install redis-server)');
  const port = await freePort();
  const python = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
  const started = launch(
    python,
    [server, '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--loglevel', 'warning'],
    {},
    tmpdir(),
  );
  const peer = makePeer('redis-server', `redis://127.0.0.1:${port}/0`, started);
  const ping = () =>
    new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.setTimeout(500, () => socket.destroy());
      socket.on('connect', () => socket.write('PING\r\n'));
      socket.on('data', (d) => {
        resolve(d.toString().startsWith('+PONG'));
        socket.end();
      });
      socket.on('error', () => resolve(false));
      socket.on('close', () => resolve(false));
    });
  try {
    await waitUntil('redis-server', started, ping, options.startTimeoutMs ?? 10_000);
  } catch (err) {
    await peer.stop();
    throw err;
  }
  return peer;
}
