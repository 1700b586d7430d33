import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { describe, test } from 'node:test';
import { runCommand } from '../helpers/processes.ts';

// onnxruntime-node's postinstall downloads CUDA libraries from a host outside the registries. The
// project denies that script in package.json's allowScripts (npm's own install-script policy), so
// npm neither runs it nor warns about a project config it does not know (.npmrc once held
// onnxruntime-node-install=skip, which every npm and npx command then warned about).

const ROOT = new URL('../../', import.meta.url).pathname;
const ORT_BIN = new URL('../../node_modules/onnxruntime-node/bin/napi-v6/linux/x64/', import.meta.url).pathname;

/** The environment without the ONNXRUNTIME_NODE_INSTALL=skip the Makefile exports: npm's policy alone decides. */
function bareEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.ONNXRUNTIME_NODE_INSTALL;
  // Were the script to run anyway, its download goes to a closed port instead of the internet.
  env.GLOBAL_AGENT_HTTPS_PROXY = 'http://127.0.0.1:9';
  env.GLOBAL_AGENT_HTTP_PROXY = 'http://127.0.0.1:9';
  return env;
}

describe('npm in the repository', () => {
  test('npm --version and npm ls onnxruntime-node warn about nothing', { timeout: 60_000 }, async () => {
    for (const args of [['--version'], ['ls', 'onnxruntime-node']]) {
      const r = await runCommand('npm', args, { cwd: ROOT, env: bareEnv() });
      assert.equal(r.code, 0, `npm ${args.join(' ')}: ${r.stderr}`);
      assert.doesNotMatch(r.stderr, /Unknown project config|npm warn/i, `npm ${args.join(' ')}`);
    }
  });

  test('every dependency install script is reviewed (allowed or denied in package.json)', { timeout: 60_000 }, async () => {
    const r = await runCommand('npm', ['approve-scripts', '--allow-scripts-pending'], { cwd: ROOT, env: bareEnv() });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /No packages with unreviewed install scripts/);
  });

  test('npm rebuild onnxruntime-node skips its CUDA download, and onnxruntime still runs a model', { timeout: 120_000 }, async () => {
    const before = readdirSync(ORT_BIN).sort();
    const r = await runCommand('npm', ['rebuild', 'onnxruntime-node', '--foreground-scripts'], { cwd: ROOT, env: bareEnv() });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.doesNotMatch(r.stdout + r.stderr, /onnxruntime-node@[\d.]+ postinstall|script\/install/);
    assert.doesNotMatch(r.stderr, /npm warn/i);
    assert.deepEqual(readdirSync(ORT_BIN).sort(), before);
    assert.ok(!existsSync(`${ORT_BIN}libonnxruntime_providers_cuda.so`));

    // The CPU binaries ship in the package: a session loads and answers.
    const load = await runCommand(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `import * as ort from 'onnxruntime-node';
         const s = await ort.InferenceSession.create('models/iris-logreg.onnx');
         const input = new ort.Tensor('float32', Float32Array.from([5.9, 3.0, 5.1, 1.8]), [1, 4]);
         const out = await s.run({ [s.inputNames[0]]: input }, [s.outputNames[0]]); // the label (the probabilities are a ZipMap)
         process.stdout.write(String(out[s.outputNames[0]].data[0]));`,
      ],
      { cwd: ROOT, env: bareEnv() },
    );
    assert.equal(load.code, 0, load.stderr);
    assert.equal(load.stdout, '2'); // the README's example row: class 2
  });
});
