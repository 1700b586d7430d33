import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { test } from 'node:test';
import { loadConfig } from '../../service/config.ts';
import { freePort, startProcess, stopProcess, waitFor } from '../helpers/processes.ts';

// The README's "Try it" commands, run as printed against the service as `make run` starts it
// (only the ports and the data folder differ), and the configuration's error messages. No
// pipefail: `curl ... | head` closing the pipe early is how a person runs it too.

const ROOT = new URL('../../', import.meta.url).pathname;
const run = promisify(execFile);

test('the README examples work against the service as make run starts it', async () => {
  const readme = await readFile(join(ROOT, 'README.md'), 'utf8');
  const block = /With `make run` going[\s\S]*?```sh\n([\s\S]*?)```/.exec(readme)?.[1];
  assert.ok(block, 'the README has its examples block');
  const data = await mkdtemp(join(tmpdir(), 'readme-'));
  const port = await freePort();
  const service = startProcess(process.execPath, ['service/main.ts'], {
    cwd: ROOT,
    env: { ...process.env, PORT: String(port), GRPC_PORT: '0', MODELS_DIR: join(data, 'models'), SAMPLE_MODELS_DIR: 'models', LOG_LEVEL: 'warn' },
  });
  try {
    await waitFor('the service', async () => (await fetch(`http://127.0.0.1:${port}/ready`)).status === 200, 60_000, 200);
    const script = block
      .replaceAll('127.0.0.1:8080', `127.0.0.1:${port}`)
      .replaceAll('data/models', join(data, 'models'))
      .replaceAll('data/backups', join(data, 'backups'));
    const { stdout } = await run('bash', ['-e', '-c', script], {
      cwd: ROOT,
      timeout: 120_000,
      maxBuffer: 16 * 1024 * 1024,
      env: { ...process.env, PATH: `${join(ROOT, 'node_modules/.bin')}:${process.env.PATH}` },
    });
    assert.doesNotMatch(stdout, /"status":5\d\d/, 'no command met a server error');
    assert.match(stdout, /"model_id":"iris-logreg"/);
    assert.match(stdout, /"label":"virginica"/);
    assert.match(stdout, /"event":"rolled_back"/);
    assert.match(stdout, /"platform":"onnx_onnxv1"/);
    assert.match(stdout, /every checksum matches/);
  } finally {
    await stopProcess(service);
    await rm(data, { recursive: true, force: true });
  }
});

test('a bad environment stops the service with a message naming each variable', async () => {
  assert.throws(
    () => loadConfig({ PORT: 'eighty', CACHE_TTL_SECONDS: '0', API_TOKEN: 'short' }),
    (err: Error) => {
      assert.match(err.message, /PORT/);
      assert.match(err.message, /CACHE_TTL_SECONDS/);
      assert.match(err.message, /API_TOKEN must be at least 16 characters/);
      return true;
    },
  );
  const { stderr, code } = await run(process.execPath, ['service/main.ts'], { cwd: ROOT, env: { ...process.env, REDIS_URL: 'not a url' } }).then(
    () => ({ stderr: '', code: 0 }),
    (err: { stderr: string; code: number }) => err,
  );
  assert.equal(code, 2);
  assert.match(stderr, /Invalid configuration in the environment:\n {2}REDIS_URL/);
});
