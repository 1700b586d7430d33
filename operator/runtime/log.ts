// Structured logs, one JSON object a line on stderr (what controller-runtime's zap logger prints):
// {"level":"info","ts":"…","logger":"modelversion","msg":"…", …fields}.

export type LogLevel = 'error' | 'warn' | 'info' | 'debug';
const ORDER: Record<LogLevel, number> = { error: 0, warn: 1, info: 2, debug: 3 };

export interface Logger {
  error(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  debug(msg: string, fields?: Record<string, unknown>): void;
  child(name: string, fields?: Record<string, unknown>): Logger;
}

export function createLogger(
  level: LogLevel = 'info',
  name = 'operator',
  base: Record<string, unknown> = {},
  write: (line: string) => void = (l) => process.stderr.write(l),
): Logger {
  const at =
    (lvl: LogLevel) =>
    (msg: string, fields: Record<string, unknown> = {}) => {
      if (ORDER[lvl] > ORDER[level]) return;
      const extra: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(fields)) extra[k] = v instanceof Error ? v.message : v;
      write(`${JSON.stringify({ level: lvl, ts: new Date().toISOString(), logger: name, msg, ...base, ...extra })}\n`);
    };
  return {
    error: at('error'),
    warn: at('warn'),
    info: at('info'),
    debug: at('debug'),
    child: (child, fields = {}) => createLogger(level, `${name}.${child}`, { ...base, ...fields }, write),
  };
}
