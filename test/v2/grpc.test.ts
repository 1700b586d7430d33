import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { call, grpcClient, PROTO } from '../helpers/grpc.ts';
import { freePort, recentOutput, startProcess, waitFor } from '../helpers/processes.ts';
import { closeTo, MODELS, reference, startService, uploadSample, type TestService } from '../helpers/service.ts';

// The Open Inference Protocol over gRPC: tritonclient's gRPC client from PyPI, unmodified,
// against the service's gRPC port, with answers equal to onnxruntime's own; the model repository
// extension (index, load, unload); the status codes of errors; the metrics; and the process
// closing its gRPC port and exiting 0.

const run = promisify(execFile);
const ROOT = new URL('../../', import.meta.url).pathname;
const PYTHON = new URL('../../.cache/venv-test/bin/python', import.meta.url).pathname;
const CHECK = new URL('./triton_grpc_check.py', import.meta.url).pathname;
// The repository checks unload and load the first one.
const MODELS_UNDER_TEST = ['iris-logreg', 'iris-species', 'diabetes-linear', 'iris-per-feature'];

async function tritonGrpcCheck(port: number, models: string[]) {
  const { stdout } = await run(PYTHON, [CHECK, `127.0.0.1:${port}`, MODELS, ...models], { timeout: 180_000, maxBuffer: 32 * 1024 * 1024 });
  return JSON.parse(stdout);
}

describe('Open Inference Protocol over gRPC with tritonclient', () => {
  let svc: TestService;
  // biome-ignore lint/suspicious/noExplicitAny: the Python client's JSON report
  let report: any;
  let metrics: string;
  before(async () => {
    svc = await startService({ GRPC_PORT: '0' });
    for (const name of MODELS_UNDER_TEST) assert.equal((await uploadSample(svc.app, name)).statusCode, 201);
    const port = await svc.app.ctx.grpc!.listen();
    assert.ok(port > 0, 'GRPC_PORT=0 picks a port, readable on the context');
    report = await tritonGrpcCheck(port, MODELS_UNDER_TEST);
    metrics = (await svc.app.inject({ url: '/metrics' })).body;
  });
  after(() => svc.close());

  test('server live, ready and metadata', () => {
    assert.equal(report.live, true);
    assert.equal(report.ready, true);
    assert.equal(report.server.name, 'analytics-api');
    for (const ext of ['model_repository', 'statistics']) assert.ok(report.server.extensions.includes(ext), ext);
  });

  test('model metadata and configuration: V2 datatypes, shapes with -1 for the batch', () => {
    const iris = report.models['iris-logreg'];
    assert.equal(iris.ready, true);
    assert.equal(iris.metadata.platform, 'onnx_onnxv1');
    assert.deepEqual(iris.metadata.versions, ['1']);
    // tritonclient's as_json shows int64 as strings (protobuf's JSON mapping).
    assert.deepEqual(iris.metadata.inputs, [{ name: 'input', datatype: 'FP32', shape: ['-1', '4'] }]);
    assert.deepEqual(
      iris.metadata.outputs.map((o: { name: string; datatype: string }) => [o.name, o.datatype]),
      [
        ['output_label', 'INT64'],
        ['probabilities', 'FP32'],
      ],
    );
    assert.equal(iris.config.platform, 'onnxruntime_onnx');
    assert.deepEqual(iris.config.input, [{ name: 'input', data_type: 'TYPE_FP32', dims: ['-1', '4'] }]);
    assert.equal(report.models['iris-species'].config.output[0].data_type, 'TYPE_STRING');
    assert.equal(report.models['diabetes-linear'].metadata.inputs[0].datatype, 'FP64');
    assert.equal(report.models['iris-per-feature'].metadata.inputs.length, 4);
  });

  for (const name of MODELS_UNDER_TEST) {
    test(`${name}: raw (tritonclient) and typed-contents answers equal onnxruntime's`, async () => {
      const ref = await reference(name);
      const entry = report.models[name];
      assert.equal(entry.raw.id, `${name}-raw`, 'the request id is echoed');
      assert.equal(entry.typed.id, `${name}-typed`);
      assert.equal(entry.typed.raw, 0, 'typed inputs get typed outputs, not raw_output_contents');
      const outputNames = entry.metadata.outputs.map((o: { name: string }) => o.name);
      ref.samples.forEach((s, i) => {
        if (ref.task === 'regression') {
          const [value] = outputNames;
          assert.ok(closeTo(entry.raw.outputs[value][i][0], s.onnxruntime.value!, 1e-9), `raw row ${i}`);
          assert.ok(closeTo(entry.typed.outputs[value].values[i], s.onnxruntime.value!, 1e-9), `typed row ${i}`);
          return;
        }
        const [labelName, probName] = outputNames;
        const raw = entry.raw.outputs[labelName][i];
        assert.equal(Array.isArray(raw) ? raw[0] : raw, s.onnxruntime.label, `raw label row ${i}`);
        assert.equal(entry.typed.outputs[labelName].values[i], s.onnxruntime.label, `typed label row ${i}`);
        const classes = s.onnxruntime.probabilities!.length;
        s.onnxruntime.probabilities!.forEach((p, c) => {
          assert.ok(closeTo(entry.raw.outputs[probName][i][c], p, 1e-6, 1e-7), `raw p row ${i}`);
          assert.ok(closeTo(entry.typed.outputs[probName].values[i * classes + c], p, 1e-6, 1e-7), `typed p row ${i}`);
        });
      });
      assert.deepEqual(entry.typed.outputs[outputNames.at(-1)].shape.map(Number).slice(0, 1), [ref.samples.length]);
    });
  }

  test('with no outputs named, every output comes back', () => {
    assert.deepEqual(report.models['iris-logreg'].default_outputs, ['output_label', 'probabilities']);
  });

  test('inference statistics count the rows and the runs', async () => {
    const rows = (await reference('iris-logreg')).samples.length;
    const [stats] = report.models['iris-logreg'].statistics.model_stats;
    assert.equal(stats.name, 'iris-logreg');
    assert.equal(stats.version, '1');
    // The raw, default (2 rows) and typed calls before the statistics call.
    assert.equal(Number(stats.inference_count), rows + 2 + rows);
    assert.ok(Number(stats.execution_count) >= 3);
    assert.equal(Number(stats.inference_stats.success.count), 3);
  });

  test('the repository index lists every model with its production version and state', () => {
    assert.deepEqual(
      report.index.models,
      [...MODELS_UNDER_TEST].sort().map((name) => ({ name, version: '1', state: 'READY' })),
    );
  });

  test('unload stops serving a model (UNAVAILABLE, not ready) until load serves it again', () => {
    assert.deepEqual(report.unload, { ok: null });
    assert.equal(report.after_unload.infer.status, 'StatusCode.UNAVAILABLE');
    assert.match(report.after_unload.infer.message, /iris-logreg is unloaded/);
    assert.equal(report.after_unload.model_ready, false);
    assert.equal(report.after_unload.server_ready, false, 'readiness is every production model loaded');
    assert.deepEqual(
      report.after_unload.index.models.find((m: { name: string }) => m.name === 'iris-logreg'),
      { name: 'iris-logreg', version: '1', state: 'UNAVAILABLE', reason: 'unloaded' },
    );
    assert.deepEqual(report.load, { ok: null });
    assert.deepEqual(report.after_load, { infer: { ok: '1' }, model_ready: true, server_ready: true });
  });

  test('errors carry the status codes the protocol expects', () => {
    const e = report.errors;
    assert.equal(e.unknown_model_metadata.status, 'StatusCode.NOT_FOUND');
    assert.equal(e.unknown_model_infer.status, 'StatusCode.NOT_FOUND');
    assert.match(e.unknown_model_infer.message, /no model named "no-such-model"/);
    assert.equal(e.unknown_version_metadata.status, 'StatusCode.NOT_FOUND');
    assert.equal(e.unknown_model_load.status, 'StatusCode.NOT_FOUND');
    assert.equal(e.bad_shape.status, 'StatusCode.INVALID_ARGUMENT');
    assert.match(e.bad_shape.message, /shape \[1,3\] does not fit the model's \[-1,4\]/);
    assert.equal(e.bad_datatype.status, 'StatusCode.INVALID_ARGUMENT');
    assert.match(e.bad_datatype.message, /datatype FP64 given, the model expects FP32/);
  });

  test('gRPC calls are counted by method and status code, errors by the service code', () => {
    const handled = (method: string, code: string) =>
      Number(
        new RegExp(
          `grpc_server_handled_total\\{grpc_type="unary",grpc_service="inference.GRPCInferenceService",grpc_method="${method}",grpc_code="${code}"\\} (\\d+)`,
        ).exec(metrics)?.[1] ?? 0,
      );
    // Per model: the raw, default and typed calls; then one before unload... and after load.
    assert.equal(handled('ModelInfer', 'OK'), MODELS_UNDER_TEST.length * 3 + 1);
    assert.equal(handled('ModelInfer', 'UNAVAILABLE'), 1);
    assert.equal(handled('ModelInfer', 'INVALID_ARGUMENT'), 2);
    assert.equal(handled('ModelMetadata', 'NOT_FOUND'), 2);
    assert.equal(handled('RepositoryModelUnload', 'OK'), 1);
    assert.match(metrics, /grpc_server_handling_seconds_count\{grpc_type="unary",grpc_service="inference.GRPCInferenceService",grpc_method="ModelInfer"\} \d+/);
    assert.match(metrics, /http_errors_total\{code="MODEL_NOT_LOADED"\} 1/);
  });

  test("every message of the service's proto is wire-compatible with tritonclient's", () => {
    const ours = protoLoader.loadSync(PROTO, { keepCase: true });
    // Fields Triton's messages do not have: KServe's answers to load and unload.
    const kserveOnly = new Set(['inference.RepositoryModelLoadResponse.model_name', 'inference.RepositoryModelLoadResponse.isLoaded']);
    kserveOnly.add('inference.RepositoryModelUnloadResponse.model_name').add('inference.RepositoryModelUnloadResponse.isUnloaded');
    let checked = 0;
    for (const [name, def] of Object.entries(ours)) {
      const type = (def as { type?: { field?: Array<{ name: string; number: number; type: string; label: string }> } }).type;
      if (!type?.field || (def as { format?: string }).format?.includes('EnumDescriptorProto')) continue;
      const theirs = report.client_messages[name];
      assert.ok(theirs, `${name} is one of tritonclient's messages`);
      for (const f of type.field) {
        if (kserveOnly.has(`${name}.${f.name}`)) continue;
        assert.deepEqual([f.name, [f.number, f.type, f.label === 'LABEL_REPEATED']], [f.name, theirs[f.name]], `${name}.${f.name}`);
        checked++;
      }
    }
    assert.ok(checked > 80, `${checked} fields checked`);
  });
});

describe('gRPC rate limit', () => {
  test("ModelInfer shares the REST infer routes' per-client budget; past it, RESOURCE_EXHAUSTED with retry-after", async () => {
    const svc = await startService({ GRPC_PORT: '0', RATE_LIMIT_PREDICT_PER_MINUTE: '3' });
    try {
      await uploadSample(svc.app, 'iris-logreg');
      const client = grpcClient(await svc.app.ctx.grpc!.listen());
      const request = {
        model_name: 'iris-logreg',
        inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], contents: { fp32_contents: [5.9, 3, 5.1, 1.8] } }],
      };
      try {
        const rest = await svc.app.inject({
          method: 'POST',
          url: '/v2/models/iris-logreg/infer',
          payload: JSON.stringify({ inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: [5.9, 3, 5.1, 1.8] }] }),
        });
        assert.equal(rest.statusCode, 200);
        for (let i = 0; i < 2; i++) assert.equal((await call<{ model_name: string }>(client, 'ModelInfer', request)).model_name, 'iris-logreg');
        const err = await call(client, 'ModelInfer', request).then(
          () => assert.fail('a fourth call within the minute answered'),
          (e: grpc.ServiceError) => e,
        );
        assert.equal(err.code, grpc.status.RESOURCE_EXHAUSTED);
        assert.match(err.details, /rate limit exceeded/);
        assert.ok(Number(err.metadata.get('retry-after')[0]) > 0);
        assert.match((await svc.app.inject({ url: '/metrics' })).body, /rate_limit_rejections_total\{route="\/inference.GRPCInferenceService\/ModelInfer"\} 1/);
      } finally {
        client.close();
      }
    } finally {
      await svc.close();
    }
  });
});

describe('gRPC message bounds', () => {
  test('a message over BODY_LIMIT_BYTES is refused with RESOURCE_EXHAUSTED, and the port goes on serving', async () => {
    const svc = await startService({ GRPC_PORT: '0', BODY_LIMIT_BYTES: '16384' });
    try {
      await uploadSample(svc.app, 'iris-logreg');
      const client = grpcClient(await svc.app.ctx.grpc!.listen());
      try {
        const rows = (n: number) => ({
          model_name: 'iris-logreg',
          inputs: [{ name: 'input', datatype: 'FP32', shape: [n, 4], contents: { fp32_contents: Array.from({ length: n * 4 }, () => 1.5) } }],
        });
        const err = await call(client, 'ModelInfer', rows(2048)).then(
          () => assert.fail('a 32 KiB message was taken'),
          (e: grpc.ServiceError) => e,
        );
        assert.equal(err.code, grpc.status.RESOURCE_EXHAUSTED);
        assert.equal((await call<{ outputs: unknown[] }>(client, 'ModelInfer', rows(2))).outputs.length, 2);
      } finally {
        client.close();
      }
    } finally {
      await svc.close();
    }
  });
});

describe('the process with gRPC', () => {
  test('logs the gRPC port it bound, and on SIGTERM closes it and exits 0', async () => {
    const data = await mkdtemp(join(tmpdir(), 'grpc-main-'));
    const child = startProcess(process.execPath, ['service/main.ts'], {
      cwd: ROOT,
      env: { ...process.env, PORT: String(await freePort()), GRPC_PORT: '0', MODELS_DIR: join(data, 'models'), LOG_LEVEL: 'info' },
    });
    try {
      const port = await waitFor(
        'the gRPC port in the log',
        async () => Number(/"address":"127\.0\.0\.1:(\d+)","msg":"gRPC/.exec(recentOutput(child))?.[1] ?? 0) || undefined,
        30_000,
        100,
      );
      const client = grpcClient(port);
      assert.deepEqual(await call(client, 'ServerLive', {}), { live: true });
      client.close();
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      const [code] = await exited;
      assert.equal(code, 0, recentOutput(child));
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
      await rm(data, { recursive: true, force: true });
    }
  });
});
