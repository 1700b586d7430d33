import { Writable } from 'node:stream';
import { isatty } from 'node:tty';
import pino, { type DestinationStream, type LoggerOptions } from 'pino';
import pretty from 'pino-pretty';

// One log shape for the service, the operator and the CLI: pino, with the level as a label and ISO
// times,
//   {"level":"info","time":"2025-06-01T12:00:00.000Z","pid":1,"hostname":"…","component":"…","msg":"…", …fields}
// JSON where a program reads the lines (a pod, a pipe, a file), pino-pretty text at a terminal:
//   [12:00:00.000] INFO: POST /api/v1/predict/iris-logreg 200 1.8 ms (req-1)
// LOG_FORMAT=json|pretty chooses; unset, whether the stream is a terminal decides.

export const LOG_FORMATS = ['pretty', 'json'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

export const LOG_FORMAT_DESCRIPTION = 'json (one object a line) or pretty (text); unset: pretty at a terminal, else json';

export interface LogSettings {
  level: string;
  format?: LogFormat | undefined;
  /** Where the lines go: a file descriptor (1 the service, 2 the operator) or a stream (tests). */
  destination?: 1 | 2 | { write(line: string): void };
  /** Paths whose values are written as "[redacted]" (pino's redact). */
  redact?: string[];
  /**
   * JSON to a file descriptor: false writes in the background (lines written while a write is
   * under way go out together in the next one; pino flushes them at exit), so a busy server does
   * not make one write(2) per request, nor wait on a full pipe. Default true: every line is
   * written before the call returns (the operator, the CLI).
   */
  sync?: boolean;
}

/** Pino's options and stream for a program's root logger (Fastify takes them as its `logger`). */
export function logOptions(settings: LogSettings): LoggerOptions & { stream: DestinationStream } {
  const destination = settings.destination ?? 1;
  const format = settings.format ?? (typeof destination === 'number' && isatty(destination) ? 'pretty' : 'json');
  return {
    level: settings.level,
    formatters: { level: (label) => ({ level: label }) },
    timestamp: pino.stdTimeFunctions.isoTime,
    ...(settings.redact ? { redact: { paths: settings.redact, censor: '[redacted]' } } : {}),
    stream:
      format === 'pretty'
        ? pretty({
            destination:
              typeof destination === 'number'
                ? destination
                : new Writable({
                    write(chunk, _encoding, done) {
                      destination.write(String(chunk));
                      done();
                    },
                  }),
            sync: true, // a line written before process.exit() is on the terminal
            translateTime: 'SYS:HH:MM:ss.l',
            ignore: 'pid,hostname,component,reqId,req,res,route,responseTime',
            messageFormat: prettyMessage,
          })
        : typeof destination === 'number'
          ? pino.destination({ dest: destination, sync: settings.sync ?? true })
          : destination,
  };
}

/** The text after the level: "[component] message (reqId)"; a request line as "METHOD url status time". */
function prettyMessage(log: Record<string, unknown>, messageKey: string): string {
  const req = log.req as { method?: string; url?: string } | undefined;
  const res = log.res as { statusCode?: number } | undefined;
  const text =
    req?.method && res?.statusCode !== undefined && typeof log.responseTime === 'number'
      ? `${req.method} ${req.url} ${res.statusCode} ${log.responseTime.toFixed(1)} ms`
      : String(log[messageKey] ?? '');
  return `${log.component ? `[${String(log.component)}] ` : ''}${text}${log.reqId ? ` (${String(log.reqId)})` : ''}`;
}
