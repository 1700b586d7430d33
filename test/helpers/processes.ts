import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, closeSync, openSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';

// Real servers for tests: free loopback ports, started as child processes, stopped by pid, and
// killed at exit even when a test fails.

const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/** `n` distinct free TCP ports on 127.0.0.1 (bound together, then released, as envtest does). */
export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
          const srv = createServer();
          srv.unref();
          srv.on('error', reject);
          srv.listen(0, '127.0.0.1', () => resolve(srv));
        }),
    ),
  );
  const ports = servers.map((srv) => {
    const addr = srv.address();
    return typeof addr === 'object' && addr ? addr.port : 0;
  });
  await Promise.all(servers.map((srv) => new Promise((r) => srv.close(r))));
  return ports;
}

/** One free TCP port on 127.0.0.1. */
export async function freePort(): Promise<number> {
  return (await freePorts(1))[0]!;
}

export function startProcess(cmd: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): ChildProcess {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options });
  let output = '';
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-20_000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  Object.defineProperty(child, 'recentOutput', { get: () => output });
  running.add(child);
  child.once('exit', () => running.delete(child));
  return child;
}

export const recentOutput = (child: ChildProcess) => (child as ChildProcess & { recentOutput: string }).recentOutput;

export async function stopProcess(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM', graceMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

/**
 * Polls `probe` until it gives a value (anything but undefined, null or false; 0 and "" count),
 * every `intervalMs`, or with a backoff from 50 ms to 500 ms when none is given. A probe that
 * throws is tried again; the time-out names what it waited for and the last value or error.
 */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined | null | false>, timeoutMs = 30_000, intervalMs?: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (let delay = intervalMs ?? 50; ; delay = intervalMs ?? Math.min(delay * 2, 500)) {
    try {
      const v = await probe();
      if (v !== undefined && v !== null && v !== false) return v;
      last = `last value: ${JSON.stringify(v)}`;
    } catch (err) {
      last = `last error: ${(err as Error).message}`;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (${last})`);
    await new Promise((r) => setTimeout(r, delay));
  }
}

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command to its end (killed after `timeoutMs`), with `input` on stdin; never rejects on a non-zero exit. */
export function runCommand(
  cmd: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; cwd?: string; input?: string; timeoutMs?: number } = {},
): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr: signal ? `${stderr}\n(${cmd} killed by ${signal})` : stderr });
    });
    // A command that exits before reading its input closes the pipe: that is not the test's error.
    child.stdin.on('error', () => {});
    child.stdin.end(opts.input ?? '');
  });
}

/** A long-running component of a test cluster (etcd, kube-apiserver, kubelet, ...): its log file and its exit. */
export interface Proc {
  name: string;
  child: ChildProcess;
  logPath: string;
  exited: Promise<number | null>;
  exitCode?: number | null;
}

/** The last lines of a log file, for an error message. */
export function tail(path: string, lines = 30): string {
  try {
    return readFileSync(path, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/**
 * Starts a component in its own process group (the harness decides the shutdown order; Ctrl-C
 * reaches only the test), its output appended to `logPath`; with `pipe`, through this process so
 * that `echo` can also print each line to stderr as `[name] line`.
 */
export function spawnLogged(
  name: string,
  cmd: string,
  args: string[],
  opts: { cwd: string; env: NodeJS.ProcessEnv; logPath: string; pipe: boolean; echo: boolean },
): Proc {
  const { logPath } = opts;
  const fd = openSync(logPath, 'a');
  const child = spawn(cmd, args, { cwd: opts.cwd, detached: true, stdio: ['ignore', opts.pipe ? 'pipe' : fd, opts.pipe ? 'pipe' : fd], env: opts.env });
  closeSync(fd);
  if (opts.pipe) {
    for (const stream of [child.stdout, child.stderr]) {
      let buf = '';
      stream?.setEncoding('utf8').on('data', (d: string) => {
        appendFileSync(logPath, d);
        if (!opts.echo) return;
        buf += d;
        const lines = buf.split('\n');
        buf = lines.pop() ?? '';
        for (const l of lines) process.stderr.write(`[${name}] ${l}\n`);
      });
    }
  }
  const proc: Proc = {
    name,
    child,
    logPath,
    exited: new Promise((resolve) => {
      child.on('exit', (code, signal) => {
        proc.exitCode = code ?? (signal ? -1 : null);
        resolve(code);
      });
      child.on('error', (err) => {
        appendFileSync(logPath, `spawn error: ${err.message}\n`);
        proc.exitCode = -1;
        resolve(-1);
      });
    }),
  };
  return proc;
}
