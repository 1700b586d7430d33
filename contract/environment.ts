import type { z } from 'zod';

// How the service and the operator read their configuration from the environment: once at start,
// against a zod schema, failing with one line per variable at fault ("  PORT: expected a number").
// (z.prettifyError words it as "✖ … → at PORT", which reads worse for environment variables.)

export function parseEnvironment<T extends z.ZodType>(schema: T, env: Record<string, string | undefined>, what: string): z.output<T> {
  const parsed = schema.safeParse(env);
  if (parsed.success) return parsed.data;
  const lines = parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`);
  throw new Error(`Invalid ${what} in the environment:\n${lines.join('\n')}`);
}
