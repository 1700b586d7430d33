import cluster, { type Worker } from 'node:cluster';
import pino from 'pino';
import { AggregatorRegistry, type Registry } from 'prom-client';
import { logOptions } from '../contract/logging.ts';
import type { Config } from './config.ts';
import { ServiceError } from './errors.ts';

// HTTP_WORKERS > 1: one primary process that only supervises, and HTTP_WORKERS copies of the
// service (node:cluster) sharing its ports, so that more than one event loop answers. The ceiling
// of one process is its event loop (one core), not inference: a second loop is the way past it.
//
// The primary forks the workers one after another (the first imports the sample models and runs
// the scheduled backups), replaces a worker that dies, and stops them all on SIGINT/SIGTERM. It
// also answers a worker's GET /metrics with every worker's figures added up (prom-client's
// AggregatorRegistry), so a scrape of any worker sees the whole process group.

const READY = 'analytics:ready';
const METRICS_REQUEST = 'analytics:metrics?';
const METRICS_ANSWER = 'analytics:metrics';
/** A worker that dies this often in a minute is not replaced again: the primary stops. */
const MAX_REPLACEMENTS_PER_MINUTE = 5;
const METRICS_TIMEOUT_MS = 5_000;

type Message = { type?: string; id?: number; text?: string; error?: string };

/** Whether this process is to fork HTTP workers rather than serve. */
export function runsHttpWorkers(config: Config): boolean {
  return config.HTTP_WORKERS > 1 && cluster.isPrimary;
}

/** This process's place among the HTTP workers (0 without workers). */
export function httpWorkerIndex(): number {
  return cluster.isWorker ? Number(process.env.HTTP_WORKER_INDEX ?? 0) : 0;
}

/** In a worker: tells the primary it listens (on every port), so that the next one may start. */
export function reportListening(): void {
  if (cluster.isWorker) process.send?.({ type: READY });
}

/**
 * In a worker: `registry`'s figures are the ones the primary adds up, and the returned function
 * reads the sum over all workers (what GET /metrics answers). Without workers: undefined.
 */
export function shareMetrics(registry: Registry): (() => Promise<string>) | undefined {
  if (!cluster.isWorker) return undefined;
  new AggregatorRegistry(); // installs the worker's answer to the primary's collection
  AggregatorRegistry.setRegistries([registry]);
  let next = 0;
  const waiting = new Map<number, { resolve(text: string): void; reject(err: Error): void }>();
  process.on('message', (message: Message) => {
    if (message?.type !== METRICS_ANSWER || message.id === undefined) return;
    const request = waiting.get(message.id);
    waiting.delete(message.id);
    if (message.error !== undefined) request?.reject(new ServiceError('METRICS_UNAVAILABLE', message.error));
    else request?.resolve(message.text ?? '');
  });
  return () =>
    new Promise<string>((resolve, reject) => {
      const id = next++;
      const timer = setTimeout(() => {
        waiting.delete(id);
        reject(new ServiceError('METRICS_UNAVAILABLE', `the primary process did not collect the workers' metrics within ${METRICS_TIMEOUT_MS} ms`));
      }, METRICS_TIMEOUT_MS);
      waiting.set(id, {
        resolve(text) {
          clearTimeout(timer);
          resolve(text);
        },
        reject(err) {
          clearTimeout(timer);
          reject(err);
        },
      });
      process.send?.({ type: METRICS_REQUEST, id });
    });
}

/**
 * The primary: forks config.HTTP_WORKERS workers, one at a time, and supervises them until
 * SIGINT/SIGTERM, which it passes on; exits once they all have (0, or 1 when one could not start
 * or kept dying).
 */
export async function runHttpWorkers(config: Config): Promise<void> {
  const log = pino(logOptions({ level: config.LOG_LEVEL, format: config.LOG_FORMAT, sync: true })).child({ component: 'http-workers' });
  const aggregator = new AggregatorRegistry();
  const replacements: number[] = [];
  const live = new Set<Worker>();
  let stopping = false;
  let failed = false;

  const stop = (signal: NodeJS.Signals, why?: string) => {
    if (why) log.fatal(why);
    if (stopping) return;
    stopping = true;
    if (live.size === 0) process.exit(failed ? 1 : 0);
    for (const worker of live) worker.process.kill(signal);
  };

  cluster.on('message', (worker, message: Message) => {
    if (message?.type !== METRICS_REQUEST) return;
    aggregator.clusterMetrics().then(
      (text) => worker.isConnected() && worker.send({ type: METRICS_ANSWER, id: message.id, text }),
      (err: Error) => worker.isConnected() && worker.send({ type: METRICS_ANSWER, id: message.id, error: err.message }),
    );
  });

  // Resolves once the worker listens; rejects when it exits first.
  const fork = (index: number) =>
    new Promise<void>((resolve, reject) => {
      const worker = cluster.fork({ HTTP_WORKER_INDEX: String(index) });
      live.add(worker);
      let listening = false;
      worker.on('message', (message: Message) => {
        if (message?.type !== READY) return;
        listening = true;
        log.info({ worker: index, workerPid: worker.process.pid }, 'HTTP worker listening');
        resolve();
      });
      worker.on('exit', (code, signal) => {
        live.delete(worker);
        if (stopping) {
          if (code) failed = true; // a worker stopped by the signal itself (code null) is fine
          if (live.size === 0) process.exit(failed ? 1 : 0);
          return;
        }
        if (!listening) return reject(new Error(`HTTP worker ${index} exited (${signal ?? `code ${code}`}) before it listened`));
        const now = Date.now();
        replacements.push(now);
        while (replacements[0] < now - 60_000) replacements.shift();
        if (replacements.length > MAX_REPLACEMENTS_PER_MINUTE) {
          failed = true;
          return stop('SIGTERM', `HTTP workers died ${replacements.length} times within a minute; stopping`);
        }
        log.error({ worker: index, code, signal }, 'HTTP worker died; starting another');
        fork(index).catch((err: Error) => {
          failed = true;
          stop('SIGTERM', err.message);
        });
      });
    });

  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => stop(signal));
  log.info({ workers: config.HTTP_WORKERS, port: config.PORT }, 'starting HTTP workers');
  for (let index = 0; index < config.HTTP_WORKERS && !stopping; index++) {
    try {
      await fork(index);
    } catch (err) {
      failed = true;
      stop('SIGTERM', `${(err as Error).message}; its log above says why`);
      return;
    }
  }
}
