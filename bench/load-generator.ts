import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cpuSecondsOf, processTree } from './peers/peers.ts';

// The load generator of `make bench`, one for every server: wrk with bench/lua/load.lua (bodies
// from a file: one fixed body, a new feature vector per request, or a Zipf draw over many), and,
// for each run, the CPU time the server spent (user + sys of its process tree, from /proc), the
// load generator's own, and the server's peak RSS.

const SCRIPT = new URL('./lua/load.lua', import.meta.url).pathname;

export type BodyMode = 'fixed' | 'distinct' | 'zipf';

export interface LoadOptions {
  url: string;
  /** fixed: one body; distinct: one body with "@N@" where a number unique to each request goes; zipf: many bodies. */
  bodies: string[];
  mode: BodyMode;
  connections: number;
  threads: number;
  durationSeconds: number;
  /** Offered requests per second (all threads together); unset: as fast as the server answers. */
  rate?: number;
  /** Makes "distinct" numbers unique across runs (0-999). */
  seed: number;
  /** The server's root process: its tree's CPU time and RSS are measured over the run. */
  serverPid: number;
  /** Called every sampleMs during the run (the service's own /metrics, for its event-loop delay). */
  sample?: () => Promise<void>;
  sampleMs?: number;
}

export interface LoadResult {
  requests: number;
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  /** Non-2xx answers, socket errors and timeouts. */
  errors: number;
  /** The server's CPU time (every process and thread of it) per answered request. */
  serverCpuMicrosPerRequest: number;
  /** Share of one core the server used over the run. */
  serverCores: number;
  loadGeneratorCores: number;
  peakRssMiB: number;
}

let bodyFiles: string | undefined;
let fileCount = 0;

async function bodyFile(lines: string[]): Promise<string> {
  bodyFiles ??= await mkdtemp(join(tmpdir(), 'bench-bodies-'));
  for (const l of lines) if (l.includes('\n')) throw new Error('a body must be one line of JSON');
  const path = join(bodyFiles, `bodies-${fileCount++}.txt`);
  await writeFile(path, `${lines.join('\n')}\n`);
  return path;
}

/** Resident memory of a process tree, in bytes (VmRSS of each /proc/<pid>/status). */
export function rssBytes(pid: number): number {
  let total = 0;
  for (const p of processTree(pid)) {
    try {
      const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${p}/status`, 'utf8'));
      if (m) total += Number(m[1]) * 1024;
    } catch {
      // gone
    }
  }
  return total;
}

const cpuOf = (pid: number) => cpuSecondsOf(processTree(pid));

export async function runLoad(o: LoadOptions): Promise<LoadResult> {
  const file = await bodyFile(o.bodies);
  const perThread = o.rate ? Math.max(1, o.rate / o.threads) : 0;
  const args = [
    `-t${o.threads}`,
    `-c${o.connections}`,
    `-d${o.durationSeconds}s`,
    '--timeout',
    '5s',
    '-s',
    SCRIPT,
    o.url,
    '--',
    file,
    o.mode,
    String(o.seed),
    String(perThread),
  ];
  let peakRss = rssBytes(o.serverPid);
  let sampling = false;
  const timer = setInterval(() => {
    peakRss = Math.max(peakRss, rssBytes(o.serverPid));
    if (o.sample && !sampling) {
      sampling = true;
      void o.sample().finally(() => (sampling = false));
    }
  }, o.sampleMs ?? 500);
  const cpu0 = cpuOf(o.serverPid);
  const t0 = performance.now();
  const { stdout, wrkCpu } = await new Promise<{ stdout: string; wrkCpu: number }>((resolve, reject) => {
    let wrkCpu = 0;
    const child = execFile('wrk', args, { timeout: (o.durationSeconds + 30) * 1000, maxBuffer: 4 * 2 ** 20 }, (err, out, stderr) => {
      if (err) reject(new Error(`wrk failed: ${err.message}\n${stderr}`));
      else resolve({ stdout: out, wrkCpu });
    });
    // wrk's CPU, read just before it exits (its threads' time is in its /proc stat until then).
    const poll = setInterval(() => {
      if (child.pid !== undefined) wrkCpu = Math.max(wrkCpu, cpuOf(child.pid));
    }, 200);
    child.once('exit', () => clearInterval(poll));
  });
  const seconds = (performance.now() - t0) / 1000;
  const cpu = cpuOf(o.serverPid) - cpu0;
  clearInterval(timer);
  peakRss = Math.max(peakRss, rssBytes(o.serverPid));
  const line = stdout.split('\n').find((l) => l.startsWith('WRKJSON '));
  if (!line) throw new Error(`wrk printed no summary:\n${stdout}`);
  const w = JSON.parse(line.slice('WRKJSON '.length)) as Record<string, number>;
  const requests = w.requests!;
  const errors = w.connectErrors! + w.readErrors! + w.writeErrors! + w.statusErrors! + w.timeouts!;
  return {
    requests,
    requestsPerSecond: Math.round(requests / (w.durationUs! / 1e6)),
    p50Ms: w.p50Us! / 1000,
    p99Ms: w.p99Us! / 1000,
    errors,
    serverCpuMicrosPerRequest: requests > 0 ? Number(((cpu * 1e6) / requests).toFixed(1)) : NaN,
    serverCores: Number((cpu / seconds).toFixed(2)),
    loadGeneratorCores: Number((wrkCpu / seconds).toFixed(2)),
    peakRssMiB: Math.round(peakRss / 2 ** 20),
  };
}
