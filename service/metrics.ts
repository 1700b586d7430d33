import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

// Every metric the service exports, named once. Prometheus conventions: base units (seconds,
// bytes), `_total` counters, route templates as labels, never ids.
export class ServiceMetrics {
  readonly registry = new Registry();

  readonly httpDuration = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'HTTP request latency by method, route template and status code',
    labelNames: ['method', 'route', 'status_code'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });

  readonly httpRequests = new Counter({
    name: 'http_requests_total',
    help: 'HTTP requests by method, route template and status code',
    labelNames: ['method', 'route', 'status_code'] as const,
    registers: [this.registry],
  });

  readonly inferenceDuration = new Histogram({
    name: 'model_inference_duration_seconds',
    help: 'Time of one ONNX run (all rows of a request), by model and version',
    labelNames: ['model', 'version'] as const,
    buckets: [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    registers: [this.registry],
  });

  readonly predictions = new Counter({
    name: 'model_predictions_total',
    help: 'Predicted rows by model, version and outcome (success, error)',
    labelNames: ['model', 'version', 'outcome'] as const,
    registers: [this.registry],
  });

  readonly loadDuration = new Histogram({
    name: 'model_load_duration_seconds',
    help: 'Time to load a model version into every inference worker',
    labelNames: ['model', 'version'] as const,
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30],
    registers: [this.registry],
  });

  readonly modelsLoaded = new Gauge({
    name: 'models_loaded',
    help: 'Model versions loaded in the inference workers',
    registers: [this.registry],
  });

  readonly errors = new Counter({
    name: 'http_errors_total',
    help: 'Error responses by error code',
    labelNames: ['code'] as const,
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry });
  }
}
