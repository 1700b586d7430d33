import { createRequire } from 'node:module';

/** The package's version: /health, GET /v2, the OpenAPI document and `analytics-api --version`. */
export const serviceVersion = (createRequire(import.meta.url)('../package.json') as { version: string }).version;
