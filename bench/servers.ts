import { fork, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './peers/peers.ts';

// The Node servers `make bench` starts: the bare Fastify route (the ceiling) and the service,
// each a child process on a free loopback port. The peers (FastAPI, MLServer, Redis) come from
// bench/peers/peers.ts and share this shape.

const ROOT = new URL('..', import.meta.url).pathname;

export interface Server {
  name: string;
  baseUrl: string;
  pid: number;
  stop(): Promise<void>;
}

async function waitFor(url: string, child: ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let exited: number | null | undefined;
  child.once('exit', (code) => (exited = code));
  while (Date.now() < deadline) {
    if (exited !== undefined) throw new Error(`${url}: the server exited (${exited}) before it answered`);
    try {
      if ((await fetch(url, { signal: AbortSignal.timeout(1_000) })).status === 200) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} not ready after ${timeoutMs} ms`);
}

function stopper(child: ChildProcess, cleanup?: () => Promise<void>): () => Promise<void> {
  return async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    }
    await cleanup?.();
  };
}

/** The bare route in `processes` processes sharing one port. */
export async function startBare(processes = 1): Promise<Server> {
  const port = await freePort();
  const child = fork(join(ROOT, 'bench/bare-server.ts'), [], {
    env: { ...process.env, PORT: String(port), BARE_PROCESSES: String(processes) },
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  const baseUrl = `http://127.0.0.1:${port}`;
  await new Promise<void>((resolve, reject) => {
    child.once('message', () => resolve());
    child.once('exit', (code) => reject(new Error(`the bare server exited (${code})`)));
  });
  return { name: processes > 1 ? `bare Fastify route (${processes} processes)` : 'bare Fastify route', baseUrl, pid: child.pid!, stop: stopper(child) };
}

export interface ServiceOptions {
  name: string;
  env?: Record<string, string>;
  /** Sample models to serve (default: every one in models/). */
  sampleModelsDir?: string;
  timeoutMs?: number;
}

/**
 * The service as `make run` starts it (sample models imported), with the rate limit out of the
 * way (it still runs; every wrk connection is one client). stdout (its log) is read and dropped,
 * as a container runtime reads it: with LOG_LEVEL=info the cost of writing it is measured.
 */
export async function startService(options: ServiceOptions): Promise<Server> {
  const modelsDir = await mkdtemp(join(tmpdir(), 'bench-models-'));
  const port = await freePort();
  const env: NodeJS.ProcessEnv = { ...process.env };
  // The options decide these, never the caller's environment.
  for (const name of ['REDIS_URL', 'LOG_LEVEL', 'INFERENCE_THREADS', 'API_TOKEN', 'HTTP_WORKERS']) delete env[name];
  const child = fork(join(ROOT, 'service/main.ts'), [], {
    env: {
      ...env,
      MODELS_DIR: modelsDir,
      SAMPLE_MODELS_DIR: options.sampleModelsDir ?? join(ROOT, 'models'),
      PORT: String(port),
      HOST: '127.0.0.1',
      GRPC_PORT: 'off',
      RATE_LIMIT_PREDICT_PER_MINUTE: '1000000000',
      ...options.env,
    },
    stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
  });
  child.stdout!.resume();
  const baseUrl = `http://127.0.0.1:${port}`;
  const stop = stopper(child, () => rm(modelsDir, { recursive: true, force: true }));
  try {
    await waitFor(`${baseUrl}/ready`, child, options.timeoutMs ?? 120_000);
  } catch (err) {
    await stop();
    throw err;
  }
  return { name: options.name, baseUrl, pid: child.pid!, stop };
}
