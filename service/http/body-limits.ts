// How large a request body each kind of route takes: a body that may cost more than it carries is
// refused with a 413 before it is parsed. Model uploads take BODY_LIMIT_BYTES (64 MiB by default).

/** Feedback and the admin calls: small JSON. */
export const JSON_BODY_LIMIT_BYTES = 1024 * 1024;

/**
 * One prediction: a row of up to MAX_FEATURES (100,000) features, with names of up to about 40
 * characters and values printed in full precision (about 7 MB of JSON).
 */
export const ROW_BODY_LIMIT_BYTES = 8 * 1024 * 1024;

/** Many rows: the batch route and V2 infer (10,000 rows of 64 features is about 13 MB of JSON). */
export const BATCH_BODY_LIMIT_BYTES = 16 * 1024 * 1024;
