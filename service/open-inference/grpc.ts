import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { fileURLToPath } from 'node:url';
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import type { ServiceContext } from '../app.ts';
import { type ErrorCode, ServiceError } from '../errors.ts';
import { errorOutcome } from '../http/problems.ts';
import { rateLimited } from '../http/rate-limit.ts';
import { type InferInput, OpenInference } from './dataplane.ts';
import { binaryData, contentsOf, decodeContents, decodeInput, type TensorContents, v2Datatype } from './tensors.ts';

// The Open Inference Protocol over gRPC (inference.GRPCInferenceService, grpc_predict_v2.proto),
// on its own port beside REST, for tritonclient.grpc and KServe's gRPC client. The same answers as
// REST (dataplane.ts), the same inference path and batching, the same rate limit on ModelInfer
// (the REST limiter's store, so a client's REST and gRPC calls share one budget), the same token
// for load and unload, and the service's error codes mapped to gRPC status codes.
//
// @grpc/grpc-js with @grpc/proto-loader: the .proto is read at start, so there is no code
// generation step or generated code to keep in step with it.

const PROTO = fileURLToPath(new URL('./grpc_predict_v2.proto', import.meta.url));
const SERVICE = 'inference.GRPCInferenceService';

/** Every error code of the service (errors.ts) → the gRPC status a client expects for it. */
const STATUS: Record<ErrorCode, grpc.status> = {
  VALIDATION_FAILED: grpc.status.INVALID_ARGUMENT,
  INVALID_MODEL: grpc.status.INVALID_ARGUMENT,
  FEATURES_INVALID: grpc.status.INVALID_ARGUMENT,
  MODEL_ID_MISMATCH: grpc.status.INVALID_ARGUMENT,
  UNSUPPORTED_MEDIA_TYPE: grpc.status.INVALID_ARGUMENT,
  UNAUTHORIZED: grpc.status.UNAUTHENTICATED,
  FORBIDDEN: grpc.status.PERMISSION_DENIED,
  MODEL_NOT_FOUND: grpc.status.NOT_FOUND,
  VERSION_NOT_FOUND: grpc.status.NOT_FOUND,
  PREDICTION_NOT_FOUND: grpc.status.NOT_FOUND,
  NOT_FOUND: grpc.status.NOT_FOUND,
  ROLLOUT_NOT_FOUND: grpc.status.NOT_FOUND,
  METHOD_NOT_ALLOWED: grpc.status.UNIMPLEMENTED,
  VERSION_EXISTS: grpc.status.ALREADY_EXISTS,
  VERSION_IN_PRODUCTION: grpc.status.FAILED_PRECONDITION,
  MANAGED_BY_KUBERNETES: grpc.status.FAILED_PRECONDITION,
  MODELS_FIXED: grpc.status.FAILED_PRECONDITION,
  ROLLOUT_IN_PROGRESS: grpc.status.FAILED_PRECONDITION,
  BODY_TOO_LARGE: grpc.status.RESOURCE_EXHAUSTED,
  RATE_LIMITED: grpc.status.RESOURCE_EXHAUSTED,
  MODEL_NOT_LOADED: grpc.status.UNAVAILABLE,
  KUBERNETES_UNAVAILABLE: grpc.status.UNAVAILABLE,
  REDIS_UNAVAILABLE: grpc.status.UNAVAILABLE,
  METRICS_UNAVAILABLE: grpc.status.UNAVAILABLE,
  INFERENCE_FAILED: grpc.status.INTERNAL,
  STORE_CORRUPT: grpc.status.INTERNAL,
  INTERNAL: grpc.status.INTERNAL,
};

// The messages as @grpc/proto-loader decodes them (keepCase, longs as strings, defaults filled in).
interface InferTensor {
  name: string;
  datatype: string;
  shape: string[];
  contents: TensorContents | null;
}
interface ModelInferRequest {
  model_name: string;
  model_version: string;
  id: string;
  inputs: InferTensor[];
  outputs: Array<{ name: string }>;
  raw_input_contents: Buffer[];
}
interface ModelRequest {
  name: string;
  version: string;
}
interface RepositoryRequest {
  repository_name: string;
  model_name: string;
}

type Call = grpc.ServerUnaryCall<unknown, unknown>;

/** The client's address from grpc-js's peer string ("127.0.0.1:5678", "::1:5678"). */
function peerAddress(call: Call): string {
  const peer = call.getPeer();
  const colon = peer.lastIndexOf(':');
  return colon > 0 ? peer.slice(0, colon) : peer;
}

const metadataValue = (call: Call, key: string): string | undefined => {
  const v = call.metadata.get(key)[0];
  return v === undefined ? undefined : String(v);
};

/** A shape as decoded (int64 as strings) → numbers, refusing what no tensor can have. */
function shapeOf(t: InferTensor): number[] {
  return t.shape.map((d) => {
    const n = Number(d);
    if (!Number.isSafeInteger(n) || n < 0) throw new ServiceError('VALIDATION_FAILED', `input "${t.name}": shape [${t.shape}] must hold non-negative integers`);
    return n;
  });
}

const hasContents = (c: TensorContents | null) => c !== null && Object.values(c).some((v) => Array.isArray(v) && v.length > 0);

export class GrpcEndpoint {
  /** The bound port once listening (GRPC_PORT, or the one picked for 0). */
  port: number | undefined;
  private readonly server: grpc.Server;
  private readonly host: string;
  private readonly wantedPort: number;
  private readonly log: FastifyBaseLogger;

  constructor(app: FastifyInstance, ctx: ServiceContext, port: number) {
    this.host = ctx.config.HOST;
    this.wantedPort = port;
    this.log = app.log.child({ component: 'grpc' });
    const limit = ctx.config.BODY_LIMIT_BYTES;
    this.server = new grpc.Server({ 'grpc.max_receive_message_length': limit, 'grpc.max_send_message_length': limit });
    const definition = protoLoader.loadSync(PROTO, { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true });
    const loaded = grpc.loadPackageDefinition(definition) as unknown as { inference: { GRPCInferenceService: { service: grpc.ServiceDefinition } } };
    this.server.addService(loaded.inference.GRPCInferenceService.service, this.handlers(ctx));
  }

  private handlers(ctx: ServiceContext): grpc.UntypedServiceImplementation {
    const oip = new OpenInference(ctx);
    const { metrics } = ctx;

    const unary =
      <Req>(method: string, fn: (request: Req, call: Call) => Promise<unknown>): grpc.handleUnaryCall<Req, unknown> =>
      (call, callback) => {
        const labels = { grpc_type: 'unary', grpc_service: SERVICE, grpc_method: method };
        const end = metrics.grpcDuration.startTimer(labels);
        fn(call.request, call as Call).then(
          (response) => {
            end();
            metrics.grpcHandled.inc({ ...labels, grpc_code: 'OK' });
            callback(null, response);
          },
          (err: Error) => {
            const { code, detail } = errorOutcome(err);
            const status = STATUS[code];
            if (status === grpc.status.INTERNAL) this.log.error({ err, method }, 'gRPC call failed');
            metrics.errors.inc({ code });
            end();
            metrics.grpcHandled.inc({ ...labels, grpc_code: grpc.status[status] });
            const trailers = new grpc.Metadata();
            const retryAfter = (err as { retryAfterSeconds?: number }).retryAfterSeconds;
            if (retryAfter !== undefined) trailers.set('retry-after', String(retryAfter));
            callback({ code: status, details: detail, metadata: trailers });
          },
        );
      };

    /** The REST infer routes' limit and store, keyed the same way: the bearer token, else the client's address. */
    const rateLimit = (call: Call, method: string) => {
      const decision = ctx.rateLimiter.check('predict', metadataValue(call, 'authorization'), peerAddress(call));
      if (decision === undefined) return;
      metrics.rateLimited.inc({ route: `/${SERVICE}/${method}` });
      throw rateLimited(decision);
    };

    const admin = (call: Call) => {
      const denied = ctx.admission.denial(metadataValue(call, 'authorization'), peerAddress(call));
      if (denied) throw denied;
    };
    // Triton's clients send model_name (field 2); KServe's put theirs in field 1 (repository_name here).
    const repositoryModel = (r: RepositoryRequest) => r.model_name || r.repository_name;

    return {
      ServerLive: unary('ServerLive', async () => ({ live: true })),
      ServerReady: unary('ServerReady', async () => ({ ready: oip.serverReady() })),
      ServerMetadata: unary('ServerMetadata', async () => oip.serverMetadata()),
      ModelReady: unary<ModelRequest>('ModelReady', async (r) => ({ ready: await oip.modelReady(r) })),
      ModelMetadata: unary<ModelRequest>('ModelMetadata', async (r) => oip.modelMetadata(r)),
      ModelConfig: unary<ModelRequest>('ModelConfig', async (r) => ({ config: await oip.modelConfig(r) })),
      ModelStatistics: unary<ModelRequest>('ModelStatistics', async (r) => ({ model_stats: await oip.modelStatistics(r) })),
      RepositoryIndex: unary<{ ready: boolean }>('RepositoryIndex', async (r) => ({ models: await oip.repositoryIndex(r.ready) })),
      RepositoryModelLoad: unary<RepositoryRequest>('RepositoryModelLoad', async (r, call) => {
        admin(call);
        await oip.load(repositoryModel(r));
        return { model_name: repositoryModel(r), isLoaded: true };
      }),
      RepositoryModelUnload: unary<RepositoryRequest>('RepositoryModelUnload', async (r, call) => {
        admin(call);
        await oip.unload(repositoryModel(r));
        return { model_name: repositoryModel(r), isUnloaded: true };
      }),
      ModelInfer: unary<ModelInferRequest>('ModelInfer', async (r, call) => {
        rateLimit(call, 'ModelInfer');
        const raw = r.raw_input_contents;
        if (raw.length > 0 && raw.length !== r.inputs.length)
          throw new ServiceError('VALIDATION_FAILED', `raw_input_contents has ${raw.length} entries for ${r.inputs.length} inputs`);
        if (raw.length > 0 && r.inputs.some((t) => hasContents(t.contents)))
          throw new ServiceError('VALIDATION_FAILED', 'inputs come either all in raw_input_contents or all as contents, not both');
        const inputs: InferInput[] = r.inputs.map((t, i) => ({
          name: t.name,
          decode: (expected) => {
            const input = { name: t.name, datatype: t.datatype, shape: shapeOf(t) };
            return raw.length > 0 ? decodeInput(input, expected, raw[i]) : decodeContents(input, expected, t.contents ?? undefined);
          },
        }));
        const names = r.outputs.length > 0 ? r.outputs.map((o) => o.name) : undefined;
        const { served, outputs } = await oip.infer({ name: r.model_name, version: r.model_version }, inputs, names);
        // Raw outputs for raw inputs (what tritonclient reads), typed contents for typed inputs;
        // FP16 has no typed field, so it always comes raw.
        const typed = raw.length === 0 ? outputs.map((o) => contentsOf(o.tensor)) : [];
        const asRaw = raw.length > 0 || typed.some((c) => c === undefined);
        return {
          model_name: served.meta.name,
          model_version: served.meta.version,
          id: r.id,
          outputs: outputs.map(({ name, tensor }, i) => ({
            name,
            datatype: v2Datatype(tensor.type) ?? tensor.type,
            shape: tensor.dims,
            ...(asRaw ? {} : { contents: typed[i] }),
          })),
          raw_output_contents: asRaw ? outputs.map((o) => binaryData(o.tensor)) : [],
        };
      }),
    };
  }

  /** Binds HOST:GRPC_PORT; resolves with the port. */
  async listen(): Promise<number> {
    const host = this.host.includes(':') ? `[${this.host}]` : this.host;
    this.port = await new Promise<number>((resolve, reject) =>
      this.server.bindAsync(`${host}:${this.wantedPort}`, grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))),
    );
    this.log.info({ address: `${host}:${this.port}` }, 'gRPC (Open Inference Protocol) listening');
    return this.port;
  }

  /** Stops taking calls and lets running ones finish (at most `graceMs`, then they are cut). */
  async close(graceMs = 10_000): Promise<void> {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.server.forceShutdown();
        resolve();
      }, graceMs);
      this.server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}
