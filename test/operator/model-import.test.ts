import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ModelStore } from '../../service/store/model-store.ts';
import type { ImportResult } from '../../contract/import-result.ts';
import { cli } from '../helpers/cli.ts';
import { freePort } from '../helpers/processes.ts';
import { modelFeatures, modelFile, sha256 } from './helpers.ts';

// `analytics-api import` for real, without Kubernetes: real ONNX files from models/, validated by
// onnxruntime through the service's own code, written into a real model store on disk.

const run = (args: string[], env: NodeJS.ProcessEnv = {}) => cli(['import', ...args], env);

describe('analytics-api import', () => {
  let dir: string;
  let models: string;
  let server: Server;
  let baseUrl: string;
  let iris: Buffer;
  let irisFeatures: string[];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'model-import-'));
    models = join(dir, 'models');
    iris = await modelFile('iris-logreg');
    irisFeatures = await modelFeatures('iris-logreg');
    const files: Record<string, Buffer> = { '/iris.onnx': iris, '/wine.onnx': await modelFile('wine-forest') };
    server = createServer((req, res) => {
      const body = files[req.url ?? ''];
      if (!body) {
        res.writeHead(404).end('no such file');
        return;
      }
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length }).end(body);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(async () => {
    await new Promise<void>((r) => server.close(() => r()));
    await rm(dir, { recursive: true, force: true });
  });

  const versionsOf = async (model: string) => (await new ModelStore(models).listVersions(model)).map((v) => v.version);

  test('a real model from a file: verified, loaded by onnxruntime, stored with its metadata and result file', async () => {
    const file = join(dir, 'iris.onnx');
    await writeFile(file, iris);
    const resultFile = join(dir, 'result-1.json');
    const r = await run([
      '--model',
      'iris',
      '--version',
      '1',
      '--file',
      file,
      '--sha256',
      sha256(iris),
      '--features',
      JSON.stringify(irisFeatures),
      '--metadata',
      '{"owner":"data-team"}',
      '--models-dir',
      models,
      '--result-file',
      resultFile,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^imported iris@1: production\/iris\/1\/model\.onnx/);
    const result = JSON.parse(await readFile(resultFile, 'utf8')) as ImportResult;
    assert.equal(result.sha256, sha256(iris));
    assert.equal(result.sizeBytes, iris.length);
    assert.equal(result.path, 'production/iris/1/model.onnx');
    assert.deepEqual(result.features, irisFeatures);
    assert.equal(result.alreadyPresent, false);
    // What the service reads: the store lists the version, its bytes check out against the record.
    const store = new ModelStore(models);
    const meta = await store.readMetadata('iris', '1');
    assert.ok(meta);
    assert.equal(meta.sha256, sha256(iris));
    assert.deepEqual(meta.metadata, { owner: 'data-team' });
    assert.equal(meta.interface.task, 'classification');
    assert.deepEqual(Buffer.from(await store.readModel(meta)), iris);
    assert.deepEqual(
      (await store.history('iris')).map((e) => e.event),
      ['uploaded'],
    );
  });

  test('the same version with the same bytes again is success (idempotent), nothing rewritten', async () => {
    const before = await stat(join(models, 'production/iris/1/model.onnx'));
    const r = await run(['--model', 'iris', '--version', '1', '--file', join(dir, 'iris.onnx'), '--models-dir', models, '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((JSON.parse(r.stdout) as ImportResult).alreadyPresent, true);
    assert.equal((await stat(join(models, 'production/iris/1/model.onnx'))).mtimeMs, before.mtimeMs);
    assert.deepEqual(
      (await new ModelStore(models).history('iris')).map((e) => e.event),
      ['uploaded'],
    );
  });

  test('the same version with other bytes fails: versions are immutable', async () => {
    const other = join(dir, 'mlp.onnx');
    await writeFile(other, await modelFile('iris-mlp'));
    const r = await run(['--model', 'iris', '--version', '1', '--file', other, '--models-dir', models]);
    assert.equal(r.code, 3, 'refused: a retry cannot help');
    assert.match(
      r.stderr,
      /^analytics-api import: model iris already has version 1 with sha256 [0-9a-f]{64}; this file has [0-9a-f]{64}\. Versions are immutable/,
    );
    assert.deepEqual(await versionsOf('iris'), ['1']);
  });

  test('a sha256 mismatch fails before anything is written, and says both digests', async () => {
    const resultFile = join(dir, 'result-mismatch.json');
    const wrong = 'a'.repeat(64);
    const r = await run([
      '--model',
      'iris',
      '--version',
      '2',
      '--file',
      join(dir, 'iris.onnx'),
      '--sha256',
      wrong,
      '--models-dir',
      models,
      '--result-file',
      resultFile,
    ]);
    assert.equal(r.code, 3, 'refused: a retry cannot help');
    assert.equal(r.stderr, `analytics-api import: sha256 mismatch: expected ${wrong}, the file has ${sha256(iris)}\n`);
    assert.deepEqual(JSON.parse(await readFile(resultFile, 'utf8')), { error: `sha256 mismatch: expected ${wrong}, the file has ${sha256(iris)}` });
    assert.deepEqual(await versionsOf('iris'), ['1']);
  });

  test('a file that is not an ONNX model fails with the reason, and leaves no trace in the store', async () => {
    const bad = join(dir, 'bad.onnx');
    await writeFile(bad, await readFile(new URL('../../models/iris-logreg.json', import.meta.url)));
    const r = await run(['--model', 'broken', '--version', '1', '--file', bad, '--models-dir', models]);
    assert.equal(r.code, 3);
    assert.match(r.stderr, /^analytics-api import: not a model the service can serve: /);
    // Named as the user gave it: the option, not the REST API's model_data.
    assert.ok(r.stderr.includes(`: --file ${bad}: not an ONNX model (`), r.stderr);
    assert.doesNotMatch(r.stderr, /model_data|request body/);
    assert.deepEqual(await versionsOf('broken'), []);
    const truncated = join(dir, 'truncated.onnx');
    await writeFile(truncated, iris.subarray(0, Math.floor(iris.length / 2)));
    const t = await run(['--model', 'broken', '--version', '2', '--file', truncated, '--models-dir', models]);
    assert.equal(t.code, 3);
    assert.match(t.stderr, /not a model the service can serve/);
    // No half-written version and no staging leftovers.
    assert.deepEqual(await versionsOf('broken'), []);
    assert.deepEqual(await readdir(join(models, '.staging')).catch(() => []), []);
  });

  test('a skl2onnx classifier ending in a ZipMap is accepted, as the service accepts it', async () => {
    const file = join(dir, 'species.onnx');
    const bytes = await modelFile('iris-species');
    await writeFile(file, bytes);
    const r = await run([
      '--model',
      'species',
      '--version',
      '1',
      '--file',
      file,
      '--features',
      JSON.stringify(await modelFeatures('iris-species')),
      '--models-dir',
      models,
      '--json',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const meta = await new ModelStore(models).readMetadata('species', '1');
    assert.equal(meta?.interface.task, 'classification');
    assert.ok(meta?.interface.classLabels?.length, 'the class labels the ZipMap carried are kept');
    assert.equal((JSON.parse(r.stdout) as ImportResult).sha256, sha256(bytes), 'the stored bytes are the original file (ZipMap removed only at load)');
  });

  test('features that do not fit the model are refused', async () => {
    const r = await run(['--model', 'iris', '--version', '3', '--file', join(dir, 'iris.onnx'), '--features', '["only-one"]', '--models-dir', models]);
    assert.equal(r.code, 3);
    assert.match(r.stderr, /takes 4 features, but 1 feature names were given/);
  });

  test('from a url (MODELS_DIR from the environment); an HTTP error fails with its status', async () => {
    const r = await run(['--model', 'wine', '--version', '1.0.0', '--url', `${baseUrl}/wine.onnx`], { MODELS_DIR: models });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await versionsOf('wine'), ['1.0.0']);
    const missing = await run(['--model', 'wine', '--version', '2', '--url', `${baseUrl}/nope.onnx`], { MODELS_DIR: models });
    assert.equal(missing.code, 1, 'a failed download is worth a retry');
    assert.match(missing.stderr, /downloading http:\/\/127\.0\.0\.1:\d+\/nope\.onnx failed: HTTP 404/);
    const refused = await run(['--model', 'wine', '--version', '3', '--url', `http://127.0.0.1:${await freePort()}/x.onnx`, '--models-dir', models]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /failed: ECONNREFUSED/);
  });

  test('a storePath source: stored elsewhere in the store it is copied in; in place it is verified', async () => {
    await mkdir(join(models, 'incoming'), { recursive: true });
    await writeFile(join(models, 'incoming', 'iris.onnx'), iris);
    const copy = await run(['--model', 'iris', '--version', '4', '--store-path', 'incoming/iris.onnx', '--sha256', sha256(iris), '--models-dir', models]);
    assert.equal(copy.code, 0, copy.stderr);
    assert.ok((await versionsOf('iris')).includes('4'));
    // In place: the service's upload wrote production/iris/1/ (metadata.json beside the file).
    const verify = await run([
      '--model',
      'iris',
      '--version',
      '1',
      '--store-path',
      'production/iris/1/model.onnx',
      '--sha256',
      sha256(iris),
      '--models-dir',
      models,
      '--json',
    ]);
    assert.equal(verify.code, 0, verify.stderr);
    assert.equal((JSON.parse(verify.stdout) as ImportResult).alreadyPresent, true);
    // A file dropped in by hand, without the service's metadata.
    await mkdir(join(models, 'production/iris/9'), { recursive: true });
    await writeFile(join(models, 'production/iris/9/model.onnx'), iris);
    const loose = await run(['--model', 'iris', '--version', '9', '--store-path', 'production/iris/9/model.onnx', '--models-dir', models]);
    assert.equal(loose.code, 3);
    assert.match(loose.stderr, /has no metadata\.json beside it/);
    // Bytes in the store that changed since they were recorded.
    await writeFile(join(models, 'production/iris/4/model.onnx'), await modelFile('iris-mlp'));
    const tampered = await run(['--model', 'iris', '--version', '4', '--store-path', 'production/iris/4/model.onnx', '--models-dir', models]);
    assert.equal(tampered.code, 3);
    assert.match(tampered.stderr, /already has version 4 with sha256/);
  });

  test('bad usage exits 2 with a message naming the problem', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['--version', '1', '--file', 'x'], /--model is required/],
      [['--model', 'Iris', '--version', '1', '--file', 'x'], /--model "Iris": a model name is/],
      [['--model', 'iris', '--version', '1'], /give exactly one of --file, --url, --store-path \(got none\)/],
      [['--model', 'iris', '--version', '1', '--file', 'x', '--url', 'http://x/y'], /got --file, --url/],
      [['--model', 'iris', '--version', '1', '--url', 'ftp://x/y'], /only http:\/\/ and https:\/\//],
      [['--model', 'iris', '--version', '1', '--file', 'x', '--sha256', 'xyz'], /--sha256 must be 64 hexadecimal/],
      [['--model', 'iris', '--version', '1', '--file', 'x', '--features', 'a,b'], /--features must be a JSON array/],
      [['--model', 'iris', '--version', '1', '--store-path', '../etc/passwd', '--models-dir', '/tmp/m'], /must be a file inside the model store/],
      [['--model', 'iris', '--version', '1', '--file', 'x', '--bogus'], /Unknown option '--bogus'/],
    ];
    for (const [args, message] of cases) {
      const r = await run(args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, message);
    }
    const help = await run(['--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /^usage: analytics-api import/);
  });
});
