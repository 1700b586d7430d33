import assert from 'node:assert/strict';
import { connect, type AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { startService, uploadSample, type TestService } from '../helpers/service.ts';

// Requests that cost far more than they carry, each refused in bounded time and size with a 4xx
// that says what to fix: the wrong content type, bodies over a route's limit, answers that would
// grow with the input, values the model's input type cannot hold, nesting that would overflow a
// stack, and clients that never finish sending.

const IRIS = { 'sepal length (cm)': 5.9, 'sepal width (cm)': 3.0, 'petal length (cm)': 5.1, 'petal width (cm)': 1.8 };

describe('hostile requests', () => {
  let svc: TestService;
  before(async () => {
    svc = await startService({ HEADERS_TIMEOUT_MS: '500', REQUEST_TIMEOUT_MS: '2000' });
    assert.equal((await uploadSample(svc.app, 'iris-logreg')).statusCode, 201);
  });
  after(() => svc.close());

  test('raw bytes go to the upload route only: elsewhere a 415 that says to send JSON', async () => {
    const res = await svc.app.inject({
      method: 'POST',
      url: '/api/v1/predict/iris-logreg',
      headers: { 'content-type': 'application/octet-stream' },
      payload: Buffer.alloc(24 * 1024),
    });
    assert.equal(res.statusCode, 415);
    assert.equal(res.json().code, 'UNSUPPORTED_MEDIA_TYPE');
    assert.match(res.json().detail, /application\/json/);
  });

  test('a client (or a proxy) that sends all of an oversized body still reads the 413: no connection reset under it', { timeout: 60_000 }, async () => {
    if (!svc.app.server.listening) await svc.app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = svc.app.server.address() as AddressInfo;
    const body = Buffer.alloc(12 * 1024 * 1024, 0x20); // over the 8 MiB of a prediction
    const send = () =>
      new Promise<string>((resolve) => {
        const socket = connect(port, '127.0.0.1');
        let answer = '';
        socket.on('data', (d) => (answer += d.toString('latin1')));
        socket.on('error', (err) => resolve(`error ${err.message}; read: ${answer.slice(0, 40)}`));
        socket.on('close', () => resolve(answer));
        socket.write(`POST /api/v1/predict/iris-logreg HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n`);
        // The whole body, as a proxy forwards it, whatever the service answered meanwhile.
        socket.write(body, () => socket.end());
      });
    for (let i = 0; i < 10; i++) {
      const answer = await send();
      assert.match(answer, /^HTTP\/1\.1 413 /, `attempt ${i + 1}: ${answer.slice(0, 200)}`);
    }
  });

  test("a body over its route's limit is a 413 naming the limit, before it is parsed", async () => {
    const t0 = performance.now();
    const big = JSON.stringify({ features: { ...IRIS, pad: 'x'.repeat(9 * 1024 * 1024) } });
    const res = await svc.app.inject({ method: 'POST', url: '/api/v1/predict/iris-logreg', headers: { 'content-type': 'application/json' }, payload: big });
    assert.equal(res.statusCode, 413);
    assert.match(res.json().detail, /at most 8388608 bytes/);
    // Feedback is small: its limit is 1 MiB.
    const fb = JSON.stringify({ prediction_id: '00000000-0000-4000-8000-000000000000', actual: 1, pad: 'x'.repeat(2 * 1024 * 1024) });
    const small = await svc.app.inject({ method: 'POST', url: '/api/v1/feedback', headers: { 'content-type': 'application/json' }, payload: fb });
    assert.equal(small.statusCode, 413);
    assert.match(small.json().detail, /at most 1048576 bytes/);
    assert.ok(performance.now() - t0 < 1000);
  });

  test('50,000 unknown features: a 400 of a few kilobytes, "and … more"', async () => {
    const features: Record<string, number> = { ...IRIS };
    for (let i = 0; i < 50_000; i++) features[`k${i}`] = i;
    const t0 = performance.now();
    const res = await svc.app.inject({ method: 'POST', url: '/api/v1/predict/iris-logreg', payload: { features } });
    const ms = performance.now() - t0;
    assert.equal(res.statusCode, 400);
    assert.equal(res.json().code, 'FEATURES_INVALID');
    assert.ok(res.body.length < 10_000, `${res.body.length} bytes`);
    assert.equal(res.json().errors.length, 20);
    assert.match(res.json().detail, /and 49,980 more/);
    assert.ok(ms < 3000, `${ms} ms (quadratic matching took minutes; linear takes milliseconds)`);
  });

  test('a value a float32 input cannot hold (1e39) is a 400, not a cached Infinity', async () => {
    const res = await svc.app.inject({ method: 'POST', url: '/api/v1/predict/iris-logreg', payload: { features: { ...IRIS, 'petal length (cm)': 1e39 } } });
    assert.equal(res.statusCode, 400);
    assert.match(res.json().detail, /beyond what the model's float32 input holds/);
  });

  test('V2: data nested 15,000 deep, FP32 beyond float32, and 1e309 are 400s', async () => {
    const nested = `${'['.repeat(15_000)}1${']'.repeat(15_000)}`;
    const infer = (data: unknown) =>
      svc.app.inject({
        method: 'POST',
        url: '/v2/models/iris-logreg/infer',
        headers: { 'content-type': 'application/json' },
        payload: `{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","data":${typeof data === 'string' ? data : JSON.stringify(data)}}]}`,
      });
    const deep = await infer(nested);
    assert.equal(deep.statusCode, 400, deep.body);
    assert.match(deep.json().error, /nested more than 2 deep/);
    const huge = await infer([5.9, 3, 1e39, 1.8]);
    assert.equal(huge.statusCode, 400);
    assert.match(huge.json().error, /beyond what float32 holds/);
    const inf = await infer('[5.9, 3, 1e309, 1.8]');
    assert.equal(inf.statusCode, 400);
    assert.match(inf.json().error, /must be a finite number/);
  });

  test('a client that never finishes its headers loses its socket', async () => {
    if (!svc.app.server.listening) await svc.app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = svc.app.server.address() as AddressInfo;
    const socket = connect(port, '127.0.0.1');
    const t0 = performance.now();
    const closed = new Promise<number>((resolve) => socket.on('close', () => resolve(performance.now() - t0)));
    socket.on('error', () => {});
    socket.resume(); // read what the server sends (its 408), so its close is seen
    socket.write('POST /api/v1/predict/iris-logreg HTTP/1.1\r\nHost: 127.0.0.1\r\n');
    const ms = await Promise.race([closed, new Promise<number>((r) => setTimeout(() => r(Number.POSITIVE_INFINITY), 10_000))]);
    socket.destroy();
    assert.ok(ms < 5_000, `the half-open request held its socket ${ms} ms`);
  });
});
