import { z } from 'zod';

// What `analytics-api import` reports, on stdout with --json and in --result-file (the import Job
// passes /dev/termination-log, so the operator reads it from the pod's termination message).

export const ImportResult = z.object({
  model: z.string(),
  version: z.string(),
  /** Path of the stored file, relative to the model store root. */
  path: z.string(),
  sha256: z.string(),
  sizeBytes: z.number(),
  features: z.array(z.string()),
  signature: z.record(z.string(), z.unknown()).optional(),
  /** The same version with the same bytes was already in the store. */
  alreadyPresent: z.boolean(),
});

export const ImportFailure = z.object({ error: z.string() });

export type ImportResult = z.output<typeof ImportResult>;

/** A pod's termination message holds at most 4096 bytes: the signature is dropped when it does not fit. */
export const TERMINATION_MESSAGE_BYTES = 4096;

/**
 * Exit statuses of `analytics-api import` that no retry can change, on which the import Job fails
 * at once (its podFailurePolicy) instead of running the same import again: bad usage, and a file
 * refused (sha256 mismatch, not a model the service can serve, too large, another file already
 * stored as that version). Other failures (1: a download or a read that failed) are retried.
 */
export const IMPORT_EXIT_USAGE = 2;
export const IMPORT_EXIT_REFUSED = 3;
