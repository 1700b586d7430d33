import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { runCommand } from '../helpers/processes.ts';
import { startService } from '../helpers/service.ts';

// The hostile ONNX models of test/hostile/generate_models.py (external data hidden in subgraphs,
// functions, sparse tensors and split fields; 300-million-feature inputs; models that fail, answer
// NaN or mis-shaped outputs; deep nesting, 100,000 nodes; truncated and non-ONNX bytes), uploaded
// over HTTP to the real service by check_manifest.py, which checks every answer against the
// manifest and how long /health took meanwhile.

const ROOT = new URL('../../', import.meta.url).pathname;

test('every hostile model gets the answer its manifest expects, and /health keeps answering within a second', { timeout: 1_200_000 }, async () => {
  const generated = await runCommand(join(ROOT, 'test/hostile/generate.sh'), ['--no-selfcheck'], { timeoutMs: 1_200_000 });
  assert.equal(generated.code, 0, generated.stderr);
  const models = generated.stdout.trim().split('\n').at(-1)!;
  const svc = await startService({ RATE_LIMIT_UPLOAD_PER_MINUTE: '100000', SAMPLE_MODELS_DIR: join(ROOT, 'models') });
  const out = await mkdtemp(join(tmpdir(), 'hostile-'));
  try {
    await svc.app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = svc.app.server.address() as AddressInfo;
    const report = join(out, 'report.json');
    const r = await runCommand(
      'python3',
      [join(ROOT, 'test/hostile/check_manifest.py'), `http://127.0.0.1:${port}`, '--models', models, '--include-risky', '--json', report],
      {
        timeoutMs: 900_000,
      },
    );
    const failed = r.stdout.split('\n').filter((l) => l.startsWith('FAIL'));
    assert.deepEqual(failed, [], r.stdout.slice(-4000));
    assert.equal(r.code, 0, r.stderr);
    const results = JSON.parse(await readFile(report, 'utf8')) as Array<{ file?: string; health_worst_seconds?: number }>;
    const slow = results.filter((x) => (x.health_worst_seconds ?? 0) > 1).map((x) => `${x.file}: ${x.health_worst_seconds} s`);
    assert.deepEqual(slow, [], 'the event loop was blocked');
    process.stdout.write(`# ${r.stdout.trim().split('\n').at(-1)}\n`);
  } finally {
    await svc.close();
    await rm(out, { recursive: true, force: true });
  }
});
