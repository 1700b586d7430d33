import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { freePort, recentOutput, runCommand, startProcess, waitFor } from '../helpers/processes.ts';

// schemathesis against the service's own OpenAPI document (test/hostile/fuzz_openapi.sh), as part
// of make test: about 1,500 generated requests on loopback to a throwaway service with the sample
// models and an API token (the document says uploads, promotes and deletes need it). Checks: no
// 5xx, every status and content type documented, responses match their schemas, invalid data
// refused. Unloads are left out: a model unloaded on purpose answers 503 afterwards, by design.

const ROOT = new URL('../../', import.meta.url).pathname;

test('schemathesis finds nothing: no 5xx, nothing undocumented, invalid data refused', { timeout: 900_000 }, async () => {
  const data = await mkdtemp(join(tmpdir(), 'fuzz-'));
  const port = await freePort();
  const token = randomBytes(16).toString('hex');
  const child = startProcess(process.execPath, [join(ROOT, 'bin', 'analytics-api.js'), 'serve'], {
    cwd: ROOT,
    env: {
      ...process.env,
      PORT: String(port),
      GRPC_PORT: 'off',
      MODELS_DIR: join(data, 'models'),
      SAMPLE_MODELS_DIR: 'models',
      LOG_LEVEL: 'warn',
      API_TOKEN: token,
      RATE_LIMIT_UPLOAD_PER_MINUTE: '100000',
    },
  });
  try {
    await waitFor('the service', async () => (await fetch(`http://127.0.0.1:${port}/ready`)).status === 200, 60_000, 200);
    const r = await runCommand(join(ROOT, 'test', 'hostile', 'fuzz_openapi.sh'), [`http://127.0.0.1:${port}`], {
      cwd: ROOT,
      env: { ...process.env, API_TOKEN: token, EXCLUDE_PATH_REGEX: '/unload$', MAX_EXAMPLES: '20', SEED: '1', FUZZ_TIMEOUT_SECONDS: '600' },
      timeoutMs: 840_000,
    });
    const summary = /(\d+) generated, (.*)$/m.exec(r.stdout);
    process.stderr.write(`# schemathesis: ${summary?.[0] ?? 'no summary'}\n`);
    assert.equal(r.code, 0, `${r.stdout.slice(-6000)}\n${r.stderr.slice(-2000)}`);
    assert.ok(Number(summary?.[1]) > 500, 'it generated requests');
    assert.equal(child.exitCode, null, `the service kept running: ${recentOutput(child)}`);
  } finally {
    child.kill('SIGTERM');
    await rm(data, { recursive: true, force: true });
  }
});
