import pino from 'pino';
import { type LogFormat, logOptions } from '../../contract/logging.ts';

// The operator's structured logs, on stderr, in the project's one shape (contract/logging.ts: pino,
// the level as a label, ISO times; pretty at a terminal): `log.info(msg, fields)` as
// controller-runtime's loggers take them, a child's name in `component` ("operator.modelversion").
//   {"level":"info","time":"…","pid":…,"hostname":…,"component":"operator.modelversion","msg":"…", …fields}

type LogLevel = 'error' | 'warn' | 'info' | 'debug';

export interface Logger {
  error(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  debug(msg: string, fields?: Record<string, unknown>): void;
  child(name: string, fields?: Record<string, unknown>): Logger;
}

export interface LoggerOptions {
  level?: LogLevel;
  /** The root's component (default "operator"); a child's is `<parent>.<name>`. */
  name?: string;
  /** Fields on every line. */
  fields?: Record<string, unknown>;
  format?: LogFormat | undefined;
  /** Default: stderr. */
  destination?: { write(line: string): void };
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const { stream, ...pinoOptions } = logOptions({ level: options.level ?? 'info', format: options.format, destination: options.destination ?? 2 });
  const root = pino(pinoOptions, stream);
  return named(root, options.name ?? 'operator', options.fields ?? {});
}

function named(root: pino.Logger, name: string, fields: Record<string, unknown>): Logger {
  // Each logger is one child of the root (not a child of its parent), so a name or a field is written once.
  const log = root.child({ component: name, ...fields });
  const at =
    (level: LogLevel) =>
    (msg: string, extra: Record<string, unknown> = {}) => {
      if (!log.isLevelEnabled(level)) return;
      const plain: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(extra)) if (fields[k] !== v) plain[k] = v instanceof Error ? v.message : v; // a field of the logger once
      log[level](plain, msg);
    };
  return {
    error: at('error'),
    warn: at('warn'),
    info: at('info'),
    debug: at('debug'),
    child: (child, more = {}) => named(root, `${name}.${child}`, { ...fields, ...more }),
  };
}
