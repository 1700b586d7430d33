import { createHash } from 'node:crypto';

// sha256 as the project writes it everywhere: artifacts (hex), short stable digests of text (object
// name suffixes, routing and applied-object hashes).

export function sha256Hex(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** The first `length` hex characters of the text's sha256. */
export function shortHash(text: string, length = 10): string {
  return sha256Hex(text).slice(0, length);
}
