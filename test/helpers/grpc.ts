import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

// A plain grpc-js client of the service's inference.GRPCInferenceService (tritonclient covers the
// rest; this one reaches the error codes and the calls tritonclient does not make).

export const PROTO = new URL('../../service/open-inference/grpc_predict_v2.proto', import.meta.url).pathname;

type Client = grpc.Client & Record<string, (req: unknown, cb: (err: grpc.ServiceError | null, res: unknown) => void) => void>;

export function grpcClient(port: number): Client {
  const definition = grpc.loadPackageDefinition(protoLoader.loadSync(PROTO, { keepCase: true, longs: String, enums: String, defaults: true }));
  const Service = (definition.inference as grpc.GrpcObject).GRPCInferenceService as grpc.ServiceClientConstructor;
  return new Service(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as unknown as Client;
}

export function call<T = unknown>(client: Client, method: string, request: unknown): Promise<T> {
  return new Promise((resolve, reject) => client[method]!.call(client, request, (err, res) => (err ? reject(err) : resolve(res as T))));
}
