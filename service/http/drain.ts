import type { Socket } from 'node:net';
import type { FastifyInstance } from 'fastify';

// Stopping without failing a request. Fastify's close() answers 503 to any request that arrives on
// an open keep-alive connection after it was called, and Node's server.close() destroys idle
// keep-alive connections at once, racing a client that is just sending its next request on one:
// under load through a Service, a pod being replaced failed a few requests each time. So on
// SIGTERM (in a pod: after the preStop sleep, once the pod has left the Service's endpoints) the
// service first drains: it keeps serving on the connections it has, answering each request with
// `Connection: close`, so every client opens its next connection elsewhere; the server closes once
// no connection is left, or at the deadline (a client idling on a pooled connection).
// Then the connections with no request in flight are destroyed: server.close() waits for every
// connection, and one that never sends a request (a TCP check, a stalled client) would hold it for
// ever once the server stops timing headers.

export interface Drainer {
  /** Connections open now. */
  open(): number;
  /** Answers every request with Connection: close from now on; resolves once no connection is open, or after `timeoutMs`, with the count left. */
  drain(timeoutMs: number): Promise<number>;
  /** Destroys the connections with no request in flight; returns how many. */
  closeIdle(): number;
}

/** Call before the app listens (it adds hooks). */
export function connectionDrainer(app: FastifyInstance): Drainer {
  /** Each open connection, with its requests in flight. */
  const sockets = new Map<Socket, number>();
  let draining = false;
  let changed: (() => void) | undefined;
  app.server.on('connection', (socket: Socket) => {
    sockets.set(socket, 0);
    socket.once('close', () => {
      sockets.delete(socket);
      changed?.();
    });
  });
  // Callback hooks, not async ones, and no listener per request: they run for every request (the
  // hot path). A request whose connection closes before it is answered goes with the connection.
  app.addHook('onRequest', (request, _reply, done) => {
    const socket = request.raw.socket;
    const n = sockets.get(socket);
    if (n !== undefined) sockets.set(socket, n + 1);
    done();
  });
  app.addHook('onResponse', (request, _reply, done) => {
    const socket = request.raw.socket;
    const n = sockets.get(socket);
    if (n !== undefined && n > 0) sockets.set(socket, n - 1);
    done();
  });
  app.addHook('onSend', (_request, reply, payload, done) => {
    if (draining) reply.header('connection', 'close');
    done(null, payload);
  });
  return {
    open: () => sockets.size,
    async drain(timeoutMs) {
      draining = true;
      const deadline = Date.now() + timeoutMs;
      while (sockets.size > 0 && Date.now() < deadline) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, Math.max(0, deadline - Date.now()));
          changed = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        changed = undefined;
      }
      return sockets.size;
    },
    closeIdle() {
      let closed = 0;
      for (const [socket, inFlight] of sockets) {
        if (inFlight > 0) continue;
        socket.destroy();
        closed++;
      }
      return closed;
    },
  };
}
