import { ApiException } from '@kubernetes/client-node';

// What a failed API call means for a reconcile: its HTTP status and the API server's message.

export function statusCode(err: unknown): number | undefined {
  if (err instanceof ApiException) return err.code;
  const e = err as { code?: unknown; statusCode?: unknown } | undefined;
  if (typeof e?.statusCode === 'number') return e.statusCode;
  return undefined;
}

export const isNotFound = (err: unknown) => statusCode(err) === 404;
export const isConflict = (err: unknown) => statusCode(err) === 409;
export const isAlreadyExists = (err: unknown) => statusCode(err) === 409 && reasonOf(err) === 'AlreadyExists';

function body(err: unknown): { message?: string; reason?: string } | undefined {
  if (!(err instanceof ApiException)) return undefined;
  const b: unknown = err.body;
  if (typeof b === 'string') {
    try {
      return JSON.parse(b) as { message?: string; reason?: string };
    } catch {
      return { message: b };
    }
  }
  return b as { message?: string; reason?: string } | undefined;
}

function reasonOf(err: unknown): string | undefined {
  return body(err)?.reason;
}

/** One line: "409 Conflict: Operation cannot be fulfilled on …", or the error's own message. */
export function describeError(err: unknown): string {
  if (err instanceof ApiException) {
    const b = body(err);
    return `${err.code}${b?.reason ? ` ${b.reason}` : ''}: ${b?.message ?? 'no message'}`;
  }
  const e = err as Error & { cause?: { code?: string; message?: string } };
  const cause = e?.cause?.code ?? e?.cause?.message;
  return `${e?.message ?? String(err)}${cause ? ` (${cause})` : ''}`.replace(/\s*\n\s*/g, '; ');
}
