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
