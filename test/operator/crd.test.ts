import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CoreV1Api } from '@kubernetes/client-node';
import type { KubeConfig } from '@kubernetes/client-node';
import { GROUP, PLURAL } from '../../contract/model-version.ts';
import type { ServiceError } from '../../service/errors.ts';
import { createModelVersion, getModelVersion, setStage } from '../../service/kubernetes/model-versions.ts';
import { modelVersionName } from '../../contract/names.ts';
import { waitFor, type ControlPlane } from '../k8s/control-plane.ts';
import { NODE, getMv, modelFile, modelVersion, ns, sha256, startCluster } from './helpers.ts';

// The ModelVersion CRD on a real API server (no controllers needed): generated from the zod schema
// by operator/print-crd.ts, accepted, documented for `kubectl explain`, defaulted, validated with
// messages a person understands, immutable where the import depends on it, printed in columns.

const TEST = 120_000;
const root = join(import.meta.dirname, '..', '..');
const valid = { model: 'iris', version: '1', source: { url: 'https://models.example.com/iris/1.onnx' } };

/** kubectl apply of one ModelVersion spec: the exit code and kubectl's message. */
async function applySpec(cp: ControlPlane, name: string, spec: unknown) {
  return cp.kubectl(['apply', '-f', '-'], { input: JSON.stringify(modelVersion(name, spec as never)) });
}

describe('ModelVersion CRD', () => {
  let cp: ControlPlane;
  let kc: KubeConfig;

  before(
    async () => {
      cp = await startCluster({ controllers: false });
      kc = cp.kubeConfig();
    },
    { timeout: 900_000 },
  );

  after(() => cp?.stop());

  test('operator/print-crd.ts is what `make install-crds` applies, and the API server takes it again unchanged', { timeout: TEST }, async () => {
    const printed = spawnSync(NODE, [join(root, 'operator', 'print-crd.ts')], { encoding: 'utf8' });
    assert.equal(printed.status, 0, printed.stderr);
    const r = await cp.kubectl(['apply', '--server-side', '--field-manager=analytics-operator-install', '-f', '-'], { input: printed.stdout });
    assert.equal(r.code, 0, r.stderr);
    const crd = JSON.parse((await cp.kubectl(['get', 'crd', `${PLURAL}.${GROUP}`, '-o', 'json'])).stdout);
    assert.deepEqual(crd.spec.names.shortNames, ['mv']);
    assert.deepEqual(crd.spec.names.categories, ['analytics', 'serving']);
    assert.deepEqual(crd.spec.versions[0].subresources, { status: {} });
    assert.ok(crd.status.conditions.some((c: { type: string; status: string }) => c.type === 'Established' && c.status === 'True'));
    assert.ok(crd.status.conditions.some((c: { type: string; status: string }) => c.type === 'NonStructuralSchema') === false, 'the schema is structural');
  });

  test('kubectl explain reads well: every spec field is described', { timeout: TEST }, async () => {
    // The OpenAPI the API server publishes for a new CRD takes a moment.
    const spec = await waitFor(
      'kubectl explain mv.spec',
      async () => {
        const r = await cp.kubectl(['explain', 'mv.spec']);
        return r.code === 0 && r.stdout;
      },
      60_000,
    );
    for (const line of [
      /model\t*<string> -required-/,
      /Model name; versions of one model share it\. Immutable/,
      /version\t*<string> -required-/,
      /source\t*<Object> -required-/,
      /Where the ONNX file comes from: exactly one of storePath, url, configMapRef/,
      /stage\t*<string>/,
      /enum: Production, Staging, Archived/,
      /Production versions serve: of the imported ones the highest version/,
      /sha256\t*<string>/,
      /features\t*<\[\]string>/,
      /backup\t*<Object>/,
    ])
      assert.match(spec, line);
    const backup = await cp.kubectl(['explain', 'mv.spec.backup']);
    assert.match(backup.stdout, /Cron schedule of the model's backup CronJob \(default daily at 02:00\)/);
    assert.match(backup.stdout, /retentionDays\t*<integer>/);
    const status = await cp.kubectl(['explain', 'mv.status']);
    assert.match(status.stdout, /conditions\t*<\[\]Object>/);
    assert.match(status.stdout, /Imported, Serving and Ready \(metav1\.Condition\)/);
  });

  test('defaults apply: stage Staging, daily backup, 7-day retention, not suspended', { timeout: TEST }, async () => {
    const r = await applySpec(cp, 'defaults', valid);
    assert.equal(r.code, 0, r.stderr);
    const mv = await getMv(kc, 'defaults');
    assert.equal(mv?.spec.stage, 'Staging');
    assert.deepEqual(mv?.spec.backup, { schedule: '0 2 * * *', retentionDays: 7, suspend: false });
  });

  test('bad specs are refused with messages a person understands', { timeout: TEST }, async () => {
    const cases: Array<[string, unknown, RegExp[]]> = [
      [
        'no source',
        { model: 'iris', version: '1', source: {} },
        [/spec\.source: Invalid value: "object": source must name exactly one of storePath, url or configMapRef/],
      ],
      [
        'two sources',
        { ...valid, source: { url: 'https://x.example/m.onnx', storePath: 'production/iris/1/model.onnx' } },
        [/source must name exactly one of storePath, url or configMapRef/],
      ],
      [
        'model name',
        { ...valid, model: 'Iris_Model' },
        [/spec\.model: Invalid value: "string": a model name is 1-63 lowercase letters, digits and "-", starting and ending with a letter or digit/],
      ],
      ['version', { ...valid, version: 'v1/beta' }, [/spec\.version: .*a version is a semantic version .*"2" reads as 2\.0\.0/]],
      ['sha256', { ...valid, sha256: 'ABC123' }, [/spec\.sha256: .*sha256 must be 64 lowercase hexadecimal characters/]],
      ['url scheme', { ...valid, source: { url: 'ftp://models.example.com/m.onnx' } }, [/spec\.source\.url: .*url must be an http:\/\/ or https:\/\/ URL/]],
      [
        'storePath escaping the store',
        { ...valid, source: { storePath: 'production/../../etc/passwd' } },
        [/spec\.source\.storePath: .*storePath is a relative path inside the model store, without "\." or "\.\." segments/],
      ],
      ['absolute storePath', { ...valid, source: { storePath: '/etc/passwd' } }, [/storePath is a relative path/]],
      ['stage', { ...valid, stage: 'Live' }, [/spec\.stage: Unsupported value: "Live": supported values: "Production", "Staging", "Archived"/]],
      [
        'schedule',
        { ...valid, backup: { schedule: 'every day' } },
        [/spec\.backup\.schedule: .*schedule must be a cron expression of five fields \(e\.g\. "0 2 \* \* \*"\) or a macro such as @daily/],
      ],
      [
        'retention',
        { ...valid, backup: { retentionDays: 0 } },
        [/spec\.backup\.retentionDays: Invalid value: 0: spec\.backup\.retentionDays in body should be greater than or equal to 1/],
      ],
      ['missing model', { version: '1', source: valid.source }, [/spec\.model: Required value/]],
      ['configMapRef without key', { ...valid, source: { configMapRef: { name: 'cm' } } }, [/spec\.source\.configMapRef\.key: Required value/]],
      ['a misspelt field (kubectl validates strictly)', { ...valid, sorce: { url: 'https://x.example/m.onnx' } }, [/unknown field "spec\.sorce"/]],
    ];
    for (const [what, spec, messages] of cases) {
      const r = await applySpec(cp, 'bad', spec);
      assert.notEqual(r.code, 0, `${what}: accepted`);
      for (const m of messages) assert.match(r.stderr, m, `${what}: ${r.stderr}`);
    }
    // Several problems at once: each named.
    const many = await applySpec(cp, 'bad', { model: 'X', version: '1', source: {}, sha256: 'x', backup: { schedule: 'daily' } });
    assert.equal((many.stderr.match(/^\* spec\./gm) ?? []).length, 4, many.stderr);
    assert.equal(await getMv(kc, 'bad'), undefined);
  });

  test('what the import read is immutable; the stage and backups are not', { timeout: TEST }, async () => {
    assert.equal((await applySpec(cp, 'immutable', { ...valid, sha256: 'a'.repeat(64), features: ['a', 'b'] })).code, 0);
    for (const [field, change] of [
      ['version', { version: '2' }],
      ['model', { model: 'wine' }],
      ['source', { source: { url: 'https://elsewhere.example/m.onnx' } }],
      ['sha256', { sha256: 'b'.repeat(64) }],
      ['features', { features: ['b', 'a'] }],
    ] as const) {
      const r = await applySpec(cp, 'immutable', { ...valid, sha256: 'a'.repeat(64), features: ['a', 'b'], ...change });
      assert.notEqual(r.code, 0, `${field} changed`);
      assert.match(r.stderr, new RegExp(`spec: Forbidden: spec\\.${field} is immutable once created; apply a new ModelVersion \\(a new version\\) instead`));
    }
    const ok = await applySpec(cp, 'immutable', {
      ...valid,
      sha256: 'a'.repeat(64),
      features: ['a', 'b'],
      stage: 'Production',
      backup: { retentionDays: 30, suspend: true },
    });
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal((await getMv(kc, 'immutable'))?.spec.stage, 'Production');
  });

  test('kubectl get mv prints Model, Version, Stage, Phase, Ready, Weight, Step, Age; the categories list it', { timeout: TEST }, async () => {
    const r = await cp.kubectl(['get', 'mv', '-n', ns]);
    assert.equal(r.code, 0, r.stderr);
    const [header, ...rows] = r.stdout.trim().split('\n');
    assert.match(header!, /^NAME\s+MODEL\s+VERSION\s+STAGE\s+PHASE\s+READY\s+WEIGHT\s+STEP\s+AGE$/);
    assert.ok(
      rows.some((row) => /^defaults\s+iris\s+1\s+Staging\s+\d+s$/.test(row)),
      r.stdout,
    );
    const wide = await cp.kubectl(['get', 'modelversions', '-n', ns, '-o', 'wide']);
    assert.match(wide.stdout.split('\n')[0]!, /AGE\s+MESSAGE$/);
    for (const category of ['analytics', 'serving']) {
      const c = await cp.kubectl(['get', category, '-n', ns]);
      assert.match(c.stdout, /^defaults\s+iris\s+1\s+Staging/m, `kubectl get ${category}`);
    }
  });

  test('status is a subresource: writing the object cannot set it', { timeout: TEST }, async () => {
    const patch = await cp.kubectl(['patch', 'mv', 'defaults', '-n', ns, '--type=merge', '-p', '{"status":{"phase":"Serving"}}']);
    assert.equal(patch.code, 0, patch.stderr);
    assert.equal((await getMv(kc, 'defaults'))?.status?.phase, undefined);
    const sub = await cp.kubectl(['patch', 'mv', 'defaults', '-n', ns, '--subresource=status', '--type=merge', '-p', '{"status":{"phase":"Serving"}}']);
    assert.equal(sub.code, 0, sub.stderr);
    assert.equal((await getMv(kc, 'defaults'))?.status?.phase, 'Serving');
  });

  test('the samples in operator/samples/ are taken as they are; the ConfigMap holds the model file', { timeout: TEST }, async () => {
    const dir = join(root, 'operator', 'samples');
    const files = (await readdir(dir)).filter((f) => f.endsWith('.yaml'));
    // Every sample imports on a real cluster: its bytes travel in a ConfigMap (no URL nobody serves, no store path nobody wrote).
    assert.deepEqual(files.sort(), ['iris-2-canary.yaml', 'iris-configmap.yaml', 'wine-configmap.yaml']);
    for (const f of files) assert.doesNotMatch(await readFile(join(dir, f), 'utf8'), /^\s+(url|storePath):/m, f);
    const dry = await cp.kubectl(['apply', '--dry-run=server', '-f', dir]);
    assert.equal(dry.code, 0, dry.stderr);
    const r = await cp.kubectl(['apply', '-f', join(dir, 'iris-configmap.yaml')]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /configmap\/iris-model-1 created\nmodelversion\.serving\.analytics\.dev\/iris-1 created/);
    const cm = await kc.makeApiClient(CoreV1Api).readNamespacedConfigMap({ name: 'iris-model-1', namespace: ns });
    const bytes = Buffer.from(cm.binaryData!['model.onnx']!, 'base64');
    assert.deepEqual(bytes, await modelFile('iris-logreg'));
    const mv = await getMv(kc, 'iris-1');
    assert.equal(mv?.spec.sha256, sha256(bytes));
    assert.equal(mv?.spec.stage, 'Production');
    for (const [file, model] of [
      ['iris-2-canary.yaml', 'iris-mlp'],
      ['wine-configmap.yaml', 'wine-forest'],
    ] as const) {
      const text = await readFile(join(dir, file), 'utf8');
      const bytes = Buffer.from(/model\.onnx: \|-\n((?: {4}.+\n)+)/.exec(text)![1]!.replace(/\s/g, ''), 'base64');
      assert.deepEqual(bytes, await modelFile(model), `${file} holds models/${model}.onnx`);
      assert.match(text, new RegExp(`sha256: ${sha256(bytes)}`), file);
    }
  });

  test("the service's ModelVersion client (service/kubernetes/model-versions.ts) creates ModelVersions and sets their stage", { timeout: TEST }, async () => {
    assert.equal(modelVersionName('iris', '1.2.0'), 'iris-1-2-0');
    const input = {
      model: 'iris',
      version: '1.2.0',
      storePath: 'production/iris/1.2.0/model.onnx',
      sha256: 'c'.repeat(64),
      features: ['a'],
      metadata: { by: 'upload' },
      stage: 'Staging' as const,
    };
    await createModelVersion(kc, ns, input);
    await createModelVersion(kc, ns, input); // a retried upload: no error
    const mv = await getModelVersion(kc, ns, 'iris', '1.2.0');
    assert.equal(mv?.metadata.name, 'iris-1-2-0');
    assert.deepEqual(mv?.spec.source, { storePath: 'production/iris/1.2.0/model.onnx' });
    assert.deepEqual(mv?.spec.metadata, { by: 'upload' });
    const managers = JSON.parse((await cp.kubectl(['get', 'mv', 'iris-1-2-0', '-n', ns, '-o', 'json', '--show-managed-fields'])).stdout).metadata.managedFields;
    assert.ok(managers.some((m: { manager: string }) => m.manager === 'analytics-api'));
    await assert.rejects(
      createModelVersion(kc, ns, { ...input, sha256: 'd'.repeat(64) }),
      (e: ServiceError) => e.code === 'VERSION_EXISTS' && /already exists/.test(e.message),
    );
    await assert.rejects(
      createModelVersion(kc, ns, { ...input, version: '2', storePath: undefined }),
      (e: ServiceError) => e.code === 'VALIDATION_FAILED' && /source must name exactly one/.test(e.message),
    );
    await setStage(kc, ns, 'iris', '1.2.0', 'Production');
    assert.equal((await getModelVersion(kc, ns, 'iris', '1.2.0'))?.spec.stage, 'Production');
    await assert.rejects(setStage(kc, ns, 'iris', '9.9.9', 'Production'), (e: ServiceError) => e.code === 'VERSION_NOT_FOUND');
    assert.equal(await getModelVersion(kc, ns, 'iris', '9.9.9'), undefined);
  });
});
