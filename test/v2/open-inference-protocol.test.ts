import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { closeTo, MODELS, reference, startService, uploadSample, type TestService } from '../helpers/service.ts';

// The Open Inference Protocol: tritonclient's HTTP client from PyPI, unmodified, in its JSON and
// its default binary mode, against the service; answers equal onnxruntime's own.

const run = promisify(execFile);
const PYTHON = new URL('../../.cache/venv-test/bin/python', import.meta.url).pathname;
const CHECK = new URL('./triton_client_check.py', import.meta.url).pathname;
const MODELS_UNDER_TEST = ['iris-logreg', 'iris-species', 'wine-forest', 'diabetes-linear', 'iris-per-feature', 'breast-cancer-gbc'];

describe('Open Inference Protocol (V2) with tritonclient', () => {
  let svc: TestService;
  // biome-ignore lint/suspicious/noExplicitAny: the Python client's JSON report
  let report: any;
  before(async () => {
    svc = await startService();
    for (const name of MODELS_UNDER_TEST) assert.equal((await uploadSample(svc.app, name)).statusCode, 201);
    await svc.app.listen({ host: '127.0.0.1', port: 0 });
    const port = (svc.app.server.address() as { port: number }).port;
    const { stdout } = await run(PYTHON, [CHECK, `127.0.0.1:${port}`, MODELS, ...MODELS_UNDER_TEST], { timeout: 120_000, maxBuffer: 32 * 1024 * 1024 });
    report = JSON.parse(stdout);
  });
  after(() => svc.close());

  test('server health and metadata', () => {
    assert.equal(report.live, true);
    assert.equal(report.ready, true);
    assert.equal(report.server.name, 'analytics-api');
    assert.ok(report.server.extensions.includes('binary_tensor_data'));
  });

  test('model metadata: platform, inputs and outputs with V2 datatypes', () => {
    const iris = report.models['iris-logreg'];
    assert.equal(iris.model_ready, true);
    assert.equal(iris.metadata.platform, 'onnx_onnxv1');
    assert.deepEqual(iris.metadata.versions, ['1']);
    assert.deepEqual(iris.metadata.inputs, [{ name: 'input', datatype: 'FP32', shape: [-1, 4] }]);
    assert.deepEqual(iris.metadata.outputs, [
      { name: 'output_label', datatype: 'INT64', shape: [-1] },
      { name: 'probabilities', datatype: 'FP32', shape: [-1, 3] },
    ]);
    assert.equal(report.models['diabetes-linear'].metadata.inputs[0].datatype, 'FP64');
    assert.equal(report.models['iris-species'].metadata.outputs[0].datatype, 'BYTES');
    assert.equal(report.models['iris-per-feature'].metadata.inputs.length, 4);
  });

  for (const name of MODELS_UNDER_TEST) {
    test(`${name}: JSON and binary answers equal onnxruntime's`, async () => {
      const ref = await reference(name);
      const entry = report.models[name];
      for (const mode of ['json', 'binary']) {
        const { outputs, id } = entry[mode];
        assert.equal(id, `${name}-${mode}`, 'the request id is echoed');
        ref.samples.forEach((s, i) => {
          if (ref.task === 'regression') {
            const value = Object.values(outputs)[0] as number[][];
            assert.ok(closeTo(value[i]![0]!, s.onnxruntime.value!, 1e-5), `${mode} row ${i}`);
            return;
          }
          const labelName = entry.metadata.outputs.find((o: { datatype: string }) => o.datatype === 'INT64' || o.datatype === 'BYTES').name;
          const probName = entry.metadata.outputs.find((o: { datatype: string }) => o.datatype === 'FP32').name;
          const label = outputs[labelName][i];
          assert.equal(Array.isArray(label) ? label[0] : label, s.onnxruntime.label, `${mode} label row ${i}`);
          for (const [c, p] of (outputs[probName][i] as number[]).entries())
            assert.ok(closeTo(p, s.onnxruntime.probabilities![c]!, 1e-5, 1e-7), `${mode} p row ${i}`);
        });
      }
    });
  }

  test('with no outputs named, every output comes back (in binary)', () => {
    assert.deepEqual(report.models['iris-logreg'].default_outputs, ['output_label', 'probabilities']);
  });

  test('the repository extension: index, unload, load; the model configuration', () => {
    const { index, config, after_unload, after_load } = report.repository;
    assert.deepEqual(
      index,
      [...MODELS_UNDER_TEST].sort().map((name) => ({ name, version: '1', state: 'READY', reason: '' })),
    );
    assert.equal(config.name, 'iris-logreg');
    assert.deepEqual(config.input, [{ name: 'input', data_type: 'TYPE_FP32', dims: [-1, 4] }]);
    assert.equal(after_unload.model_ready, false);
    assert.deepEqual(
      after_unload.index.find((m: { name: string }) => m.name === 'iris-logreg'),
      { name: 'iris-logreg', version: '1', state: 'UNAVAILABLE', reason: 'unloaded' },
    );
    assert.equal(after_load.model_ready, true);
    assert.equal(after_load.statistics.model_stats[0].name, 'iris-logreg');
  });

  test('a shape mismatch is a 400 that says what is wrong', () => {
    assert.equal(report.bad_shape.status, '400');
    assert.match(report.bad_shape.message, /shape \[1,3\] does not fit the model's \[-1,4\]/);
  });
});

describe('V2 errors and batching', () => {
  let svc: TestService;
  before(async () => {
    svc = await startService();
    await uploadSample(svc.app, 'iris-logreg');
  });
  after(() => svc.close());

  const infer = (body: unknown, url = '/v2/models/iris-logreg/infer') =>
    svc.app.inject({ method: 'POST', url, headers: { 'content-type': 'application/json' }, payload: JSON.stringify(body) });
  const row = [5.9, 3.0, 5.1, 1.8];

  test('JSON infer with nested data, errors as {"error"}', async () => {
    const ok = await infer({ id: 'a1', inputs: [{ name: 'input', shape: [2, 4], datatype: 'FP32', data: [row, row] }], outputs: [{ name: 'output_label' }] });
    assert.equal(ok.statusCode, 200, ok.body);
    assert.deepEqual(ok.json().outputs, [{ name: 'output_label', datatype: 'INT64', shape: [2], data: [2, 2] }]);
    assert.equal(ok.json().id, 'a1');
    const cases: Array<[unknown, RegExp, string?]> = [
      [{ inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP64', data: row }] }, /datatype FP64 given, the model expects FP32/],
      [{ inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3] }] }, /holds 4 elements, data has 3/],
      [{ inputs: [{ name: 'x', shape: [1, 4], datatype: 'FP32', data: row }] }, /unknown input "x"/],
      [{ inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: ['a', 1, 2, 3] }] }, /element 0 must be a finite number/],
      [{ inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: row }], outputs: [{ name: 'nope' }] }, /unknown output "nope"/],
      [{ inputs: [] }, /inputs/],
      [{ inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: row }] }, /no model named "nope"/, '/v2/models/nope/infer'],
    ];
    for (const [body, message, url] of cases) {
      const res = await infer(body, url);
      assert.ok(res.statusCode >= 400 && res.statusCode < 500, `${res.statusCode} ${res.body}`);
      assert.match(res.json().error, message);
    }
    const garbage = await svc.app.inject({ method: 'POST', url: '/v2/models/iris-logreg/infer', payload: 'not json' });
    assert.equal(garbage.statusCode, 400);
    assert.match(garbage.json().error, /not valid JSON/);
  });

  test('concurrent requests over both APIs are coalesced into fewer ONNX runs, answers to the right callers', async () => {
    const features = (x: number) => ({ 'sepal length (cm)': x, 'sepal width (cm)': 3.0, 'petal length (cm)': 5.1, 'petal width (cm)': 1.8 });
    const xs = Array.from({ length: 24 }, (_, i) => 4 + i * 0.2);
    const alone: number[][] = [];
    for (const x of xs)
      alone.push(
        (await svc.app.inject({ method: 'POST', url: '/api/v1/predict/iris-logreg@1', payload: { features: features(x + 0.001) } })).json().probabilities,
      );
    const before = await runsAndRequests(svc);
    const together = await Promise.all(
      xs.map((x, i) =>
        i % 2 === 0
          ? svc.app
              .inject({ method: 'POST', url: '/api/v1/predict/iris-logreg@1', payload: { features: features(x + 0.001) } })
              .then((r) => r.json().probabilities)
          : infer({
              inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: [x + 0.001, 3.0, 5.1, 1.8] }],
              outputs: [{ name: 'probabilities' }],
            }).then((r) => r.json().outputs[0].data),
      ),
    );
    const afterCounts = await runsAndRequests(svc);
    for (const [i, p] of (together as number[][]).entries()) for (const [c, v] of p.entries()) assert.ok(closeTo(v, alone[i][c], 1e-6, 1e-7), `request ${i}`);
    const runs = afterCounts.runs - before.runs;
    assert.ok(runs < xs.length, `${xs.length} requests took ${runs} ONNX runs`);
  });
});

describe('V2 model repository over REST', () => {
  let svc: TestService;
  before(async () => {
    svc = await startService();
    await uploadSample(svc.app, 'iris-logreg');
    // A second version, not promoted.
    assert.equal((await uploadSample(svc.app, 'iris-mlp', '2', {}, 'iris-logreg')).statusCode, 201);
  });
  after(() => svc.close());
  const IRIS = { 'sepal length (cm)': 5.9, 'sepal width (cm)': 3.0, 'petal length (cm)': 5.1, 'petal width (cm)': 1.8 };
  const predict = (model = 'iris-logreg') => svc.app.inject({ method: 'POST', url: `/api/v1/predict/${model}`, payload: { features: IRIS } });
  const v2infer = () =>
    svc.app.inject({
      method: 'POST',
      url: '/v2/models/iris-logreg/infer',
      payload: JSON.stringify({ inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: Object.values(IRIS) }] }),
    });
  const loaded = async () =>
    Object.fromEntries(
      (await svc.app.inject({ url: '/api/v1/models/iris-logreg' })).json().versions.map((v: { version: string; loaded: boolean }) => [v.version, v.loaded]),
    );

  test("a version's metadata and readiness are read without loading it", async () => {
    const meta = await svc.app.inject({ url: '/v2/models/iris-logreg/versions/2' });
    assert.equal(meta.statusCode, 200, meta.body);
    assert.deepEqual(meta.json().versions, ['1', '2']);
    assert.equal(meta.json().outputs[0].name, 'label', "version 2's (iris-mlp), not version 1's output_label");
    const ready = await svc.app.inject({ url: '/v2/models/iris-logreg/versions/2/ready' });
    assert.deepEqual([ready.statusCode, ready.json()], [400, { name: 'iris-logreg', ready: false }]);
    assert.deepEqual(await loaded(), { 1: true, 2: false });
    assert.equal((await svc.app.inject({ url: '/v2/models/iris-logreg/versions/9' })).statusCode, 404);
  });

  test('unload stops serving the model over every API, /ready says so; load serves it again', async () => {
    assert.deepEqual((await svc.app.inject({ method: 'POST', url: '/v2/repository/index' })).json(), [
      { name: 'iris-logreg', version: '1', state: 'READY', reason: '' },
    ]);
    const unload = await svc.app.inject({
      method: 'POST',
      url: '/v2/repository/models/iris-logreg/unload',
      payload: '{"parameters": {"unload_dependents": false}}',
    });
    assert.equal(unload.statusCode, 200, unload.body);
    assert.deepEqual(await loaded(), { 1: false, 2: false });
    for (const res of [await predict(), await predict('iris-logreg@1')]) {
      assert.equal(res.statusCode, 503);
      assert.equal(res.json().code, 'MODEL_NOT_LOADED');
    }
    const infer = await v2infer();
    assert.equal(infer.statusCode, 503);
    assert.match(infer.json().error, /unloaded; load it/);
    const ready = await svc.app.inject({ url: '/ready' });
    assert.equal(ready.statusCode, 503);
    assert.deepEqual(ready.json().models, [{ name: 'iris-logreg', version: '1', loaded: false, error: 'unloaded through the model repository API' }]);
    assert.equal((await svc.app.inject({ url: '/v2/health/ready' })).statusCode, 503);
    assert.equal((await svc.app.inject({ url: '/v2/models/iris-logreg' })).statusCode, 200, 'metadata still answers');
    assert.deepEqual((await svc.app.inject({ method: 'POST', url: '/v2/repository/index', payload: '{"ready": true}' })).json(), []);

    assert.equal((await svc.app.inject({ method: 'POST', url: '/v2/repository/models/iris-logreg/load' })).statusCode, 200);
    assert.equal((await predict()).statusCode, 200);
    assert.equal((await v2infer()).statusCode, 200);
    assert.equal((await svc.app.inject({ url: '/ready' })).statusCode, 200);
  });

  test('load and unload of an unknown model are 404s', async () => {
    for (const action of ['load', 'unload']) {
      const res = await svc.app.inject({ method: 'POST', url: `/v2/repository/models/nope/${action}` });
      assert.equal(res.statusCode, 404);
      assert.match(res.json().error, /no model named "nope"/);
    }
  });
});

async function runsAndRequests(svc: TestService): Promise<{ runs: number }> {
  const text = (await svc.app.inject({ url: '/metrics' })).body;
  return { runs: Number(/model_batch_size_count\{model="iris-logreg",version="1"\} (\d+)/.exec(text)?.[1] ?? 0) };
}
