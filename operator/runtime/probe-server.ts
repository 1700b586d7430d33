import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';

// One small HTTP server for the kubelet and Prometheus: /metrics, /healthz (the process serves),
// /readyz (every check passes; `?verbose` lists them, as the API server's own /readyz does).

export interface Check {
  name: string;
  ok(): boolean;
}

export interface ProbeServer {
  port: number;
  close(): Promise<void>;
}

export async function startProbeServer(opts: { host: string; port: number; registry: Registry; healthz: Check[]; readyz: Check[] }): Promise<ProbeServer> {
  const report = (checks: Check[], verbose: boolean) => {
    const results = checks.map((c) => ({ name: c.name, ok: safe(c) }));
    const ok = results.every((r) => r.ok);
    const lines = verbose ? `${results.map((r) => `[${r.ok ? '+' : '-'}]${r.name} ${r.ok ? 'ok' : 'failed'}`).join('\n')}\n` : '';
    return {
      status: ok ? 200 : 503,
      body: `${lines}${
        ok
          ? 'ok'
          : `failed: ${results
              .filter((r) => !r.ok)
              .map((r) => r.name)
              .join(', ')}`
      }\n`,
    };
  };
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://probe');
    const send = (status: number, body: string, type = 'text/plain; charset=utf-8') => {
      res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'method not allowed\n');
    const verbose = url.searchParams.has('verbose');
    switch (url.pathname) {
      case '/metrics':
        opts.registry.metrics().then(
          (text) => send(200, text, opts.registry.contentType),
          (err: Error) => send(500, `${err.message}\n`),
        );
        return;
      case '/healthz':
      case '/livez': {
        const r = report(opts.healthz, verbose);
        return send(r.status, r.body);
      }
      case '/readyz': {
        const r = report(opts.readyz, verbose);
        return send(r.status, r.body);
      }
      default:
        return send(404, 'not found: /metrics, /healthz, /readyz\n');
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function safe(c: Check): boolean {
  try {
    return c.ok();
  } catch {
    return false;
  }
}
