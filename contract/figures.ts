// The specification's figures, stated once: the service, the manifests, the tests and the docs
// import them from here and never retype them.
export const figures = {
  /** Container resources (SPEC "Container Resource Management"). */
  resources: {
    requests: { cpu: 2, memoryGiB: 4 },
    limits: { cpu: 4, memoryGiB: 8 },
  },
  /** Largest request body by default (model uploads); the ingress lets bodies this big through. */
  bodyLimitBytes: 64 * 1024 * 1024,
  /** Prediction cache TTL (SPEC "Caching System": 60 seconds). */
  cacheTtlSeconds: 60,
  /** Backups (SPEC "Backup Configuration"). */
  backup: { schedule: '0 2 * * *', retentionDays: 7 },
  /** Performance requirements (SPEC). */
  targets: {
    cacheHitRatio: 0.8,
    modelLoadSeconds: 5,
    memoryOfLimit: 0.8,
    cpuOfLimit: 0.9,
  },
} as const;

/**
 * Targets the specification leaves open ("Maximum response time: To be determined", "Error
 * rates"): this platform's choices, stated once for the alerts, the dashboard and the tests.
 */
export const platformTargets = {
  /** p99 of a prediction request, seconds (a bucket boundary of http_request_duration_seconds). */
  predictP99Seconds: 0.5,
  /** Share of responses that are 5xx. */
  serverErrorRatio: 0.01,
  /** Below this many cache lookups per second the hit ratio says nothing. */
  minCacheLookupsPerSecond: 0.1,
} as const;
