import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { modelBytes, reference, startService, uploadSample, type TestService } from '../helpers/service.ts';

const IRIS = { 'sepal length (cm)': 5.9, 'sepal width (cm)': 3.0, 'petal length (cm)': 5.1, 'petal width (cm)': 1.8 };

async function storeFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  async function walk(d: string) {
    for (const e of await readdir(d, { withFileTypes: true }).catch(() => [])) {
      if (e.isDirectory()) await walk(join(d, e.name));
      else out.push(join(d, e.name).slice(dir.length));
    }
  }
  await walk(dir);
  return out.sort();
}

describe('model upload', () => {
  let svc: TestService;
  before(async () => {
    svc = await startService();
  });
  after(() => svc.close());

  test('JSON upload with base64 model_data: 201 with the stored description', async () => {
    const res = await uploadSample(svc.app, 'iris-logreg', '1.0.0', { metadata: { owner: 'data-team' } }, 'iris');
    assert.equal(res.statusCode, 201, res.body);
    const v = res.json();
    assert.equal(v.name, 'iris');
    assert.equal(v.version, '1.0.0');
    assert.match(v.sha256, /^[0-9a-f]{64}$/);
    assert.equal(v.sizeBytes, (await modelBytes('iris-logreg')).length);
    assert.deepEqual(v.features, (await reference('iris-logreg')).features);
    assert.deepEqual(v.metadata, { owner: 'data-team' });
    assert.equal(v.production, true, 'the first version is promoted');
    assert.deepEqual(v.signature.inputs[0], { name: 'input', isTensor: true, type: 'float32', shape: ['', 4] });
    assert.equal(v.interface, undefined, 'internal fields are not exposed');
  });

  test('raw octet-stream upload with query parameters', async () => {
    const ref = await reference('iris-mlp');
    const qs = new URLSearchParams({ name: 'iris', version: '2.0.0', promote: 'false' });
    for (const f of ref.features) qs.append('features', f);
    const res = await svc.app.inject({
      method: 'POST',
      url: `/api/v1/models?${qs}`,
      headers: { 'content-type': 'application/octet-stream' },
      payload: await modelBytes('iris-mlp'),
    });
    assert.equal(res.statusCode, 201, res.body);
    assert.equal(res.json().production, false);
    const model = (await svc.app.inject({ url: '/api/v1/models/iris' })).json();
    assert.equal(model.production_version, '1.0.0');
    assert.deepEqual(
      model.versions.map((v: { version: string }) => v.version),
      ['1.0.0', '2.0.0'],
    );
    assert.deepEqual(
      model.history.map((e: { event: string }) => e.event),
      ['uploaded', 'promoted', 'uploaded'],
    );
  });

  test('features can also be one JSON array in the query', async () => {
    const ref = await reference('wine-forest');
    const qs = new URLSearchParams({ name: 'wine', version: '1', features: JSON.stringify(ref.features) });
    const res = await svc.app.inject({
      method: 'POST',
      url: `/api/v1/models?${qs}`,
      headers: { 'content-type': 'application/octet-stream' },
      payload: await modelBytes('wine-forest'),
    });
    assert.equal(res.statusCode, 201, res.body);
    assert.ok(res.json().features.includes('od280/od315_of_diluted_wines'));
  });

  test('the same name and version again is a 409 and changes nothing', async () => {
    const before = await storeFiles(svc.modelsDir);
    const res = await uploadSample(svc.app, 'iris-mlp', '1.0.0', {}, 'iris');
    assert.equal(res.statusCode, 409);
    assert.equal(res.json().code, 'VERSION_EXISTS');
    assert.deepEqual(await storeFiles(svc.modelsDir), before);
  });

  test('bytes that are not a model: 400 naming the problem, nothing written', async () => {
    const before = await storeFiles(svc.modelsDir);
    for (const payload of [Buffer.from('definitely not onnx'), Buffer.alloc(64, 0xff), (await modelBytes('iris-logreg')).subarray(0, 400)]) {
      const res = await svc.app.inject({
        method: 'POST',
        url: '/api/v1/models',
        payload: { name: 'broken', version: '1', model_data: payload.toString('base64') },
      });
      assert.equal(res.statusCode, 400, res.body);
      assert.equal(res.json().code, 'INVALID_MODEL');
      assert.match(res.json().detail, /^model_data: .*onnx/i); // the field the bytes came in
    }
    const raw = await svc.app.inject({
      method: 'POST',
      url: '/api/v1/models?name=broken&version=1',
      headers: { 'content-type': 'application/octet-stream' },
      payload: Buffer.from('definitely not onnx'),
    });
    assert.equal(raw.statusCode, 400, raw.body);
    assert.match(raw.json().detail, /^the request body: not an ONNX model \(.*\); expected the bytes of a \.onnx file$/);
    assert.deepEqual(await storeFiles(svc.modelsDir), before);
    assert.equal((await svc.app.inject({ url: '/api/v1/models/broken' })).statusCode, 404);
  });

  test('model_data that is not base64 is a 400', async () => {
    const res = await svc.app.inject({ method: 'POST', url: '/api/v1/models', payload: { name: 'x', version: '1', model_data: 'not base64 !!' } });
    assert.equal(res.statusCode, 400);
    assert.match(res.json().detail, /base64/);
  });

  test('features that do not fit the input: 400, nothing written', async () => {
    const before = await storeFiles(svc.modelsDir);
    const res = await uploadSample(svc.app, 'iris-logreg', '9', { features: ['a', 'b', 'c'] }, 'iris');
    assert.equal(res.statusCode, 400);
    assert.equal(res.json().code, 'FEATURES_INVALID');
    assert.match(res.json().detail, /takes 4 features, but 3/);
    const dup = await uploadSample(svc.app, 'iris-logreg', '9', { features: ['a', 'a', 'b', 'c'] }, 'iris');
    assert.equal(dup.statusCode, 400);
    assert.match(dup.json().detail, /unique/);
    const perFeature = await uploadSample(
      svc.app,
      'iris-per-feature',
      '1',
      { features: ['x', 'sepal width (cm)', 'petal length (cm)', 'petal width (cm)'] },
      'irisf',
    );
    assert.equal(perFeature.statusCode, 400);
    assert.deepEqual(
      perFeature
        .json()
        .errors.map((e: { field: string }) => e.field)
        .sort(),
      ['sepal length (cm)', 'x'],
    );
    assert.deepEqual(await storeFiles(svc.modelsDir), before);
  });

  test('invalid names and unknown fields are refused with what to fix', async () => {
    const bad = await uploadSample(svc.app, 'iris-logreg', '1', {}, 'Iris Model');
    assert.equal(bad.statusCode, 400);
    assert.match(bad.json().detail, /lowercase/);
    const unknown = await uploadSample(svc.app, 'iris-logreg', '1', { colour: 'blue' }, 'iris2');
    assert.equal(unknown.statusCode, 400);
    assert.match(unknown.json().detail, /colour/);
    const badVersion = await uploadSample(svc.app, 'iris-logreg', '../1', {}, 'iris3');
    assert.equal(badVersion.statusCode, 400);
  });

  test('a model with external data references is refused', async () => {
    const res = await svc.app.inject({
      method: 'POST',
      url: '/api/v1/models',
      payload: { name: 'external', version: '1', model_data: externalDataModel().toString('base64') },
    });
    assert.equal(res.statusCode, 400, res.body);
    assert.match(res.json().detail, /external data/);
    assert.match(res.json().detail, /weights/);
  });

  test('a body over the limit is a 413', async () => {
    const small = await startService({ BODY_LIMIT_BYTES: '2048' });
    try {
      const res = await uploadSample(small.app, 'wine-forest', '1');
      assert.equal(res.statusCode, 413);
      assert.equal(res.json().code, 'BODY_TOO_LARGE');
      assert.equal(res.headers['content-type'], 'application/problem+json; charset=utf-8');
    } finally {
      await small.close();
    }
  });
});

describe('promote, rollback, delete, pinned versions', () => {
  let svc: TestService;
  before(async () => {
    svc = await startService();
    assert.equal((await uploadSample(svc.app, 'iris-logreg', '1', {}, 'iris')).statusCode, 201);
    assert.equal((await uploadSample(svc.app, 'iris-mlp', '2', {}, 'iris')).statusCode, 201);
  });
  after(() => svc.close());

  const predict = async (id: string) => svc.app.inject({ method: 'POST', url: `/api/v1/predict/${id}`, payload: { features: IRIS } });

  test('a pinned version answers while another is in production', async () => {
    assert.equal((await predict('iris')).json().model_version, '1');
    assert.equal((await predict('iris@2')).json().model_version, '2');
    assert.equal((await predict('iris@7')).statusCode, 404);
  });

  test('promote switches production; promoting an older one is recorded as a rollback', async () => {
    const up = await svc.app.inject({ method: 'POST', url: '/api/v1/models/iris/versions/2/promote' });
    assert.equal(up.statusCode, 200, up.body);
    assert.deepEqual({ event: up.json().event, version: up.json().version, previous: up.json().previous }, { event: 'promoted', version: '2', previous: '1' });
    assert.equal((await predict('iris')).json().model_version, '2');
    const back = await svc.app.inject({ method: 'POST', url: '/api/v1/models/iris/versions/1/promote' });
    assert.equal(back.json().event, 'rolled_back');
    assert.equal((await predict('iris')).json().model_version, '1');
  });

  test('deleting the production version is a 409; another version goes', async () => {
    const prod = await svc.app.inject({ method: 'DELETE', url: '/api/v1/models/iris/versions/1' });
    assert.equal(prod.statusCode, 409);
    assert.equal(prod.json().code, 'VERSION_IN_PRODUCTION');
    const other = await svc.app.inject({ method: 'DELETE', url: '/api/v1/models/iris/versions/2' });
    assert.equal(other.statusCode, 204);
    assert.equal((await predict('iris@2')).statusCode, 404);
    const model = (await svc.app.inject({ url: '/api/v1/models/iris' })).json();
    assert.deepEqual(
      model.versions.map((v: { version: string }) => v.version),
      ['1'],
    );
    assert.equal(model.history.at(-1).event, 'deleted');
    assert.equal((await svc.app.inject({ method: 'DELETE', url: '/api/v1/models/iris/versions/2' })).statusCode, 404);
    assert.equal((await svc.app.inject({ method: 'POST', url: '/api/v1/models/nope/versions/1/promote' })).statusCode, 404);
  });

  test('the production choice survives a restart', async () => {
    assert.equal((await uploadSample(svc.app, 'iris-mlp', '3', { promote: true }, 'iris')).statusCode, 201);
    const again = await startService({ MODELS_DIR: svc.modelsDir });
    try {
      const res = await again.app.inject({ method: 'POST', url: '/api/v1/predict/iris', payload: { features: IRIS } });
      assert.equal(res.json().model_version, '3');
      assert.equal((await again.app.inject({ url: '/ready' })).statusCode, 200);
    } finally {
      await again.close();
    }
  });
});

describe('prediction requests', () => {
  let svc: TestService;
  before(async () => {
    svc = await startService();
    await uploadSample(svc.app, 'iris-logreg', '1', {}, 'iris');
  });
  after(() => svc.close());

  test('missing, unknown and non-finite features are named in one 400', async () => {
    const { 'petal width (cm)': _, ...missing } = IRIS;
    // 1e999 is valid JSON that parses to Infinity.
    const payload = `{"features": ${JSON.stringify({ ...missing, colour: 1 }).slice(0, -1)}, "sepal length (cm)": 1e999}}`;
    const res = await svc.app.inject({ method: 'POST', url: '/api/v1/predict/iris', headers: { 'content-type': 'application/json' }, payload });
    assert.equal(res.statusCode, 400, res.body);
    const fields = res
      .json()
      .errors.map((e: { field: string }) => e.field)
      .sort();
    assert.deepEqual(fields, ['colour', 'petal width (cm)', 'sepal length (cm)']);
    assert.match(res.json().detail, /Expected features: sepal length \(cm\)/);
  });

  test('values that are not numbers, bad JSON and a mismatched model_id are 400s', async () => {
    const str = await svc.app.inject({ method: 'POST', url: '/api/v1/predict/iris', payload: { features: { ...IRIS, 'sepal length (cm)': '5.1' } } });
    assert.equal(str.statusCode, 400);
    assert.equal(str.json().code, 'FEATURES_INVALID');
    assert.match(str.json().detail, /"sepal length \(cm\)" must be a finite number/);
    const json = await svc.app.inject({
      method: 'POST',
      url: '/api/v1/predict/iris',
      headers: { 'content-type': 'application/json' },
      payload: '{"features": {',
    });
    assert.equal(json.statusCode, 400);
    const mismatch = await svc.app.inject({ method: 'POST', url: '/api/v1/predict/iris', payload: { features: IRIS, model_id: 'wine' } });
    assert.equal(mismatch.statusCode, 400);
    assert.equal(mismatch.json().code, 'MODEL_ID_MISMATCH');
    const text = await svc.app.inject({ method: 'POST', url: '/api/v1/predict/iris', headers: { 'content-type': 'text/plain' }, payload: 'hello' });
    assert.equal(text.statusCode, 415);
  });

  test('unknown models and routes are 404 problems', async () => {
    const res = await svc.app.inject({ method: 'POST', url: '/api/v1/predict/nope', payload: { features: IRIS } });
    assert.equal(res.statusCode, 404);
    assert.equal(res.json().code, 'MODEL_NOT_FOUND');
    const route = await svc.app.inject({ url: '/api/v2/whatever' });
    assert.equal(route.statusCode, 404);
    assert.equal(route.json().code, 'NOT_FOUND');
  });

  test('a cached answer says x-cache: hit; key order and number spelling do not matter', async () => {
    const features = { ...IRIS, 'sepal length (cm)': 6.3 };
    const first = await svc.app.inject({ method: 'POST', url: '/api/v1/predict/iris', payload: { features } });
    assert.equal(first.headers['x-cache'], 'miss');
    const reordered = Object.fromEntries(Object.entries(features).reverse());
    const body = JSON.stringify({ features: reordered }).replace('6.3', '6.30e0');
    const second = await svc.app.inject({ method: 'POST', url: '/api/v1/predict/iris', headers: { 'content-type': 'application/json' }, payload: body });
    assert.equal(second.headers['x-cache'], 'hit');
    assert.equal(second.json().prediction, first.json().prediction);
    assert.notEqual(second.json().prediction_id, first.json().prediction_id);
  });
});

describe('authorization', () => {
  test('with API_TOKEN set, writes need the bearer token; reads and predictions do not', async () => {
    const svc = await startService({ API_TOKEN: 'a-token-of-sixteen-chars' });
    try {
      const none = await uploadSample(svc.app, 'iris-logreg', '1', {}, 'iris');
      assert.equal(none.statusCode, 401);
      assert.equal(none.json().code, 'UNAUTHORIZED');
      const wrong = await svc.app.inject({
        method: 'POST',
        url: '/api/v1/models/iris/versions/1/promote',
        headers: { authorization: 'Bearer wrong-token-wrong-token' },
      });
      assert.equal(wrong.statusCode, 401);
      const ref = await reference('iris-logreg');
      const ok = await svc.app.inject({
        method: 'POST',
        url: '/api/v1/models',
        headers: { authorization: 'Bearer a-token-of-sixteen-chars' },
        payload: { name: 'iris', version: '1', model_data: (await modelBytes('iris-logreg')).toString('base64'), features: ref.features },
      });
      assert.equal(ok.statusCode, 201);
      assert.equal((await svc.app.inject({ url: '/api/v1/models/iris' })).statusCode, 200);
      assert.equal((await svc.app.inject({ method: 'POST', url: '/api/v1/predict/iris', payload: { features: IRIS } })).statusCode, 200);
    } finally {
      await svc.close();
    }
  });

  test('with no token configured, writes are accepted from loopback only', async () => {
    const svc = await startService();
    try {
      const remote = await svc.app.inject({
        method: 'POST',
        url: '/api/v1/models',
        remoteAddress: '10.1.2.3',
        payload: { name: 'x', version: '1', model_data: 'AAAA' },
      });
      assert.equal(remote.statusCode, 403);
      assert.match(remote.json().detail, /loopback/);
    } finally {
      await svc.close();
    }
  });
});

describe('health, readiness, metrics, docs', () => {
  test('endpoints a person and a probe use', async () => {
    const svc = await startService();
    try {
      await uploadSample(svc.app, 'diabetes-forest', '1');
      const health = (await svc.app.inject({ url: '/health' })).json();
      assert.equal(health.status, 'ok');
      assert.deepEqual(health.models, [{ name: 'diabetes-forest', version: '1', loaded: true }]);
      assert.deepEqual(health.cache, { backend: 'memory', status: 'ok' });
      assert.equal((await svc.app.inject({ url: '/ready' })).statusCode, 200);
      await svc.app.inject({
        method: 'POST',
        url: '/api/v1/predict/diabetes-forest',
        payload: { features: (await reference('diabetes-forest')).samples[0]!.features },
      });
      const metrics = (await svc.app.inject({ url: '/metrics' })).body;
      assert.match(metrics, /http_request_duration_seconds_bucket\{.*route="\/api\/v1\/predict\/:model_id"/);
      assert.match(metrics, /model_inference_duration_seconds_count\{model="diabetes-forest",version="1"\} 1/);
      assert.match(metrics, /model_load_duration_seconds_count\{model="diabetes-forest",version="1"\} 1/);
      const openapi = (await svc.app.inject({ url: '/docs/json' })).json();
      assert.ok(openapi.paths['/api/v1/predict/{model_id}'].post.requestBody);
      assert.ok(openapi.paths['/api/v1/models'].post);
      assert.equal((await svc.app.inject({ url: '/docs' })).statusCode < 400, true);
    } finally {
      await svc.close();
    }
  });

  test('a damaged artifact on disk is not served and /ready says so', async () => {
    const svc = await startService();
    await uploadSample(svc.app, 'iris-logreg', '1', {}, 'iris');
    await svc.app.close();
    const path = join(svc.modelsDir, 'production/iris/1/model.onnx');
    const bytes = await readFile(path);
    bytes[bytes.length - 10] ^= 0xff;
    const { writeFile } = await import('node:fs/promises');
    await writeFile(path, bytes);
    const again = await startService({ MODELS_DIR: svc.modelsDir });
    try {
      const ready = await again.app.inject({ url: '/ready' });
      assert.equal(ready.statusCode, 503);
      assert.match(JSON.stringify(ready.json()), /sha256/);
      assert.equal((await again.app.inject({ method: 'POST', url: '/api/v1/predict/iris', payload: { features: IRIS } })).statusCode, 503);
      assert.equal((await again.app.inject({ url: '/health' })).json().status, 'degraded');
    } finally {
      await again.close();
      await svc.close();
    }
  });
});

/** A minimal ModelProto whose one initializer says its data lives in an external file. */
function externalDataModel(): Buffer {
  const varint = (n: number) => {
    const out: number[] = [];
    do {
      let b = n & 0x7f;
      n >>>= 7;
      if (n) b |= 0x80;
      out.push(b);
    } while (n);
    return out;
  };
  const len = (no: number, payload: number[]) => [...varint((no << 3) | 2), ...varint(payload.length), ...payload];
  const int = (no: number, v: number) => [...varint(no << 3), ...varint(v)];
  const text = (s: string) => [...Buffer.from(s)];
  const entry = (k: string, v: string) => len(13, [...len(1, text(k)), ...len(2, text(v))]);
  const tensor = [...int(1, 4), ...int(2, 1), ...len(8, text('weights')), ...entry('location', 'weights.bin'), ...int(14, 1)];
  const graph = [...len(5, tensor), ...len(2, text('g'))];
  return Buffer.from([...int(1, 8), ...len(7, graph)]);
}
