import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, test } from 'node:test';
import { IMAGE_GID, IMAGE_UID } from '../../infra/names.ts';
import { infraTool, loadYaml, repoRoot, run } from './helpers.ts';

// No Docker engine runs here, so the image is checked without building it: hadolint lints the
// Dockerfile, this file checks the project's own rules (base image, stages, npm ci --omit=dev,
// non-root numeric USER, what is copied), and the programs the image runs are shown to need
// nothing the image leaves out. shellcheck lints the scripts behind the make targets.

interface Instruction {
  op: string;
  args: string;
  stage: number;
}

/** The Dockerfile's instructions (continuation lines joined, comments dropped), with their stage. */
function instructions(): Instruction[] {
  const text = readFileSync(join(repoRoot, 'Dockerfile'), 'utf8');
  const joined = text
    .split('\n')
    .filter((l) => !/^\s*#/.test(l))
    .join('\n')
    .replace(/\\\n/g, ' ');
  let stage = -1;
  return joined
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .map((l) => {
      const [op, ...rest] = l.split(/\s+/);
      if (op.toUpperCase() === 'FROM') stage++;
      return { op: op.toUpperCase(), args: rest.join(' '), stage };
    });
}

const ins = instructions();
const final = ins.filter((i) => i.stage === Math.max(...ins.map((x) => x.stage)));

describe('Dockerfile', () => {
  test('hadolint finds nothing', { timeout: 60_000 }, async () => {
    const r = await run(infraTool('hadolint'), ['--no-color', 'Dockerfile']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(r.stdout.trim(), '');
  });

  test('multi-stage on node:24-bookworm-slim (the Node.js major the project runs)', () => {
    const froms = ins.filter((i) => i.op === 'FROM').map((i) => i.args.split(/\s+/)[0]);
    assert.ok(froms.length >= 2, 'at least a dependency stage and the runtime stage');
    for (const f of froms) assert.equal(f, 'node:24-bookworm-slim');
    const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8'));
    assert.match(pkg.engines.node, />=24/);
  });

  test("production dependencies only, with onnxruntime-node's download skipped", () => {
    const deps = ins.filter((i) => i.stage === 0);
    const runIdx = deps.findIndex((i) => i.op === 'RUN' && /\bnpm ci\b/.test(i.args));
    assert.ok(runIdx >= 0, 'npm ci in the first stage');
    assert.match(deps[runIdx].args, /npm ci --omit=dev/);
    const envIdx = deps.findIndex((i) => i.op === 'ENV' && /ONNXRUNTIME_NODE_INSTALL=skip/.test(i.args));
    assert.ok(envIdx >= 0 && envIdx < runIdx, 'ONNXRUNTIME_NODE_INSTALL=skip set before npm ci');
    assert.ok(
      deps.some((i) => i.op === 'COPY' && /package-lock\.json/.test(i.args) && /\.npmrc/.test(i.args)),
      'the lock file and .npmrc are copied for npm ci',
    );
    assert.ok(
      final.some((i) => i.op === 'COPY' && /--from=deps .*node_modules/.test(i.args)),
      'node_modules comes from the dependency stage',
    );
    assert.ok(!final.some((i) => i.op === 'RUN' && /\bnpm (ci|install)\b/.test(i.args)), 'nothing installed in the runtime stage');
  });

  test('runs as the non-root uid/gid the manifests use, set by number', () => {
    const users = final.filter((i) => i.op === 'USER');
    assert.equal(users.length, 1);
    assert.equal(users[0].args, `${IMAGE_UID}:${IMAGE_GID}`);
    assert.ok(IMAGE_UID > 0);
    const after = final.slice(final.indexOf(users[0]) + 1).map((i) => i.op);
    assert.ok(!after.includes('RUN') && !after.includes('COPY'), 'USER comes after every RUN and COPY');
  });

  test('copies contract/, service/, operator/, bin/, the sample models and package*.json; the entrypoint runs the service, the operator or the CLI', () => {
    const copies = final.filter((i) => i.op === 'COPY' && !i.args.startsWith('--from')).flatMap((i) => i.args.split(/\s+/).slice(0, -1));
    for (const src of ['package.json', 'package-lock.json', 'contract/', 'service/', 'operator/', 'bin/', 'models/'])
      assert.ok(copies.includes(src), `COPY ${src}`);
    assert.deepEqual(final.find((i) => i.op === 'ENTRYPOINT')?.args, '["docker-entrypoint.sh"]');
    assert.deepEqual(final.find((i) => i.op === 'CMD')?.args, '["node", "service/main.ts"]');
    assert.ok(
      final.some((i) => i.op === 'RUN' && /ln -s \/app\/bin\/analytics-api\.js \/usr\/local\/bin\/analytics-api/.test(i.args)),
      '`analytics-api` on PATH',
    );
    assert.ok(readFileSync(join(repoRoot, 'bin/analytics-api.js'), 'utf8').startsWith('#!/usr/bin/env node'));
  });

  test('no HEALTHCHECK in the image (it also runs the operator and one-shot CLI commands); compose has its own', () => {
    assert.ok(!ins.some((i) => i.op === 'HEALTHCHECK'));
    const compose = loadYaml(join(repoRoot, 'compose.yaml'))[0];
    assert.ok(compose.services['analytics-api'].healthcheck.test.join(' ').includes('/health'));
  });

  test('.dockerignore lets in exactly what the Dockerfile copies', () => {
    const lines = readFileSync(join(repoRoot, '.dockerignore'), 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#'));
    assert.equal(lines[0], '*', 'everything is excluded first');
    const allowed = lines.filter((l) => l.startsWith('!')).map((l) => l.slice(1));
    for (const src of ['package.json', 'package-lock.json', '.npmrc', 'contract/', 'service/', 'operator/', 'bin/']) assert.ok(allowed.includes(src), src);
    assert.ok(
      allowed.some((a) => a.startsWith('models/') && a.endsWith('.onnx')),
      'the sample ONNX files',
    );
    for (const never of ['node_modules', '.git', 'data', '.cache', 'test', 'infra']) assert.ok(!allowed.some((a) => a.startsWith(never)), never);
  });

  test('the programs the image runs import only what it contains: contract/, service/, operator/, bin/ and production dependencies', () => {
    const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8'));
    const prod = new Set(Object.keys(pkg.dependencies));
    const inImage = ['contract/', 'service/', 'operator/', 'bin/'];
    const entries = ['service/main.ts', 'bin/analytics-api.js', 'operator/main.ts'].filter((e) => existsSync(join(repoRoot, e)));
    assert.ok(entries.includes('service/main.ts') && entries.includes('bin/analytics-api.js'));
    const seen = new Set<string>();
    const queue = [...entries.map((e) => join(repoRoot, e))];
    // Static imports and re-exports at the start of a line (braces may span lines), and import().
    const importRe = /^\s*(?:import|export)\s+(?:type\s+)?(?:[\w*{}\s,$]+?\s+from\s+)?['"]([^'"]+)['"]|\bimport\(\s*['"]([^'"]+)['"]\s*\)/gm;
    while (queue.length) {
      const file = queue.pop()!;
      if (seen.has(file)) continue;
      seen.add(file);
      const rel = relative(repoRoot, file);
      assert.ok(
        inImage.some((d) => rel.startsWith(d)),
        `${rel} is in the image`,
      );
      for (const m of readFileSync(file, 'utf8').matchAll(importRe)) {
        const spec = m[1] ?? m[2];
        if (spec.startsWith('node:')) continue;
        if (spec.startsWith('.')) {
          queue.push(resolve(dirname(file), spec));
          continue;
        }
        const name = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0];
        assert.ok(prod.has(name), `${rel} imports ${spec}: ${name} must be a production dependency (npm ci --omit=dev)`);
      }
    }
    assert.ok(seen.size > 10, `followed ${seen.size} files`);
  });
});

describe('infra/scripts', () => {
  test('shellcheck finds nothing', { timeout: 60_000 }, async () => {
    const dir = join(repoRoot, 'infra/scripts');
    const scripts = readdirSync(dir)
      .filter((f) => f.endsWith('.sh'))
      .map((f) => join('infra/scripts', f));
    assert.ok(scripts.length >= 6);
    const r = await run(infraTool('shellcheck'), ['-x', ...scripts]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
  });

  test('the make targets exist in infra/infra.mk, in the order a user follows them', () => {
    const mk = readFileSync(join(repoRoot, 'infra/infra.mk'), 'utf8');
    const targets = ['synth', 'doctor', 'cluster', 'images', 'deploy', 'demo', 'undeploy'];
    const positions = targets.map((t) => mk.search(new RegExp(`^${t}:`, 'm')));
    for (const [i, p] of positions.entries()) assert.ok(p >= 0, `target ${targets[i]}`);
    assert.deepEqual(
      [...positions].sort((a, b) => a - b),
      positions,
    );
    for (const t of ['cluster', 'images', 'deploy', 'demo', 'undeploy']) assert.match(mk, new RegExp(`^${t}:\\n\\tinfra/scripts/${t}\\.sh$`, 'm'));
    assert.match(readFileSync(join(repoRoot, 'Makefile'), 'utf8'), /^test: .*\binfra-tools\b/m, 'make test installs the linters first');
  });
});
