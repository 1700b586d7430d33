// How large a request body each kind of route takes: a body that may cost more than it carries is
// refused with a 413 before it is parsed. Model uploads take BODY_LIMIT_BYTES (64 MiB by default).

/** One prediction, feedback, and the admin calls: JSON of a row's features. */
export const JSON_BODY_LIMIT_BYTES = 1024 * 1024;

/** Many rows: the batch route and V2 infer (10,000 rows of 64 features is about 13 MB of JSON). */
export const BATCH_BODY_LIMIT_BYTES = 16 * 1024 * 1024;
