import type { ChildProcess } from 'node:child_process';
import { createConnection } from 'node:net';
import { freePort, recentOutput, startProcess, stopProcess, waitFor } from './processes.ts';

// A real redis-server on a free loopback port, persistence off; stop() and start() again on the
// same port, to test what the service does while Redis is away.

export interface RedisServer {
  port: number;
  url: string;
  start(): Promise<void>;
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** SIGSTOP: connections stay open, nothing answers (a frozen Redis). */
  freeze(): void;
  thaw(): void;
}

function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    socket.setTimeout(500);
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.once('data', (d) => {
      resolve(d.toString().startsWith('+PONG'));
      socket.destroy();
    });
    socket.once('error', () => resolve(false));
    socket.once('timeout', () => {
      resolve(false);
      socket.destroy();
    });
  });
}

export async function startRedis(): Promise<RedisServer> {
  const port = await freePort();
  let child: ChildProcess | undefined;
  const server: RedisServer = {
    port,
    url: `redis://127.0.0.1:${port}`,
    async start() {
      child = startProcess('redis-server', [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--appendonly',
        'no',
        '--protected-mode',
        'yes',
        '--daemonize',
        'no',
      ]);
      const c = child;
      await waitFor(`redis-server on ${port} (${recentOutput(c)})`, async () => (await ping(port)) || undefined, 10_000);
    },
    freeze() {
      child?.kill('SIGSTOP');
    },
    thaw() {
      child?.kill('SIGCONT');
    },
    async stop(signal = 'SIGKILL') {
      child?.kill('SIGCONT');
      if (child) await stopProcess(child, signal);
      child = undefined;
    },
  };
  await server.start();
  return server;
}
