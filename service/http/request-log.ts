import { LogController, type FastifyBaseLogger, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';

// One line per request, when its response is sent, in Fastify's own field names:
//   {"level":"info",…,"reqId":"req-1","req":{"method":"POST","url":"/api/v1/predict/iris-logreg",
//    "host":…,"remoteAddress":…,"remotePort":…},"res":{"statusCode":200},
//    "route":"/api/v1/predict/:model_id","responseTime":1.8,"msg":"request completed"}
// at info for the API, at debug for probes and scrapes (an idle pod writes nothing at info). No
// "incoming request" line: the completed line says everything, with the time it took.

/** Routes the kubelet and Prometheus call every few seconds. */
const QUIET_ROUTES = new Set(['/health', '/ready', '/v2/health/live', '/v2/health/ready', '/metrics']);

export class RequestLog extends LogController {
  override incomingRequest(): void {}

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    const route = request.routeOptions.url;
    const level = error ? 'error' : route !== undefined && QUIET_ROUTES.has(route) ? 'debug' : 'info';
    // Below the log level nothing is built (LOG_LEVEL=warn: the hot path pays one check). Pino
    // says; a logger without the check (logger: false) is asked anyway.
    if ((reply.log as FastifyBaseLogger & Partial<Pick<Logger, 'isLevelEnabled'>>).isLevelEnabled?.(level) === false) return;
    const fields = { req: request, res: reply, route, responseTime: Math.round(reply.elapsedTime * 10) / 10 };
    if (error) reply.log.error({ ...fields, err: error }, 'request errored');
    else reply.log[level](fields, 'request completed');
  }
}
