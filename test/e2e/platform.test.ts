import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { OPERATOR_NAME, SERVICE_NAME, backupCronJobName } from '../../contract/names.ts';
import { modelFilePath } from '../../contract/store-layout.ts';
import { runCommand } from '../helpers/processes.ts';
import { closeTo, reference, type Reference } from '../helpers/service.ts';
import { waitFor } from '../k8s/control-plane.ts';
import { getMv, modelConfigMap, modelFile, modelVersion, sha256, waitForPhase } from '../operator/helpers.ts';
import { startIngressController, type IngressController } from '../k8s/ingress.ts';
import { containerPid, http, leader, ns, startE2eCluster, startLoad, waitAllPodsServe, type E2eCluster, type LoadReport, type Pod } from './cluster.ts';

// Issue 12's end-to-end test: the platform deployed by `make synth` + `make deploy` (with small
// requests, test/e2e/cluster.ts) on a real node (kubelet, containerd, runc, CNI, kube-proxy,
// CoreDNS) running the project's image. What a user checks: the pods come up with the manifests'
// security contexts, probes and volumes; ModelVersions from a ConfigMap and from a URL import
// through real Jobs running the CLI; predictions through the Service equal onnxruntime's; a
// promotion lands on every pod in place under load without a failed request; rollback; backups
// that verify; the operator's leader dies and the other replica carries on; a Deployment roll
// under load loses nothing. Figures go to stderr as `# ...` lines.

const MODEL = 'iris';
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const say = (line: string) => process.stderr.write(`# ${line}\n`);
const ms = (n: number) => `${(n / 1000).toFixed(1)} s`;
const elapsed = (t0: number) => Math.round(performance.now() - t0);

/** The rows the tests send: the reference samples and a spread of others. */
function rowsOf(ref: Reference): Record<string, number>[] {
  const rows = ref.samples.map((s) => s.features);
  for (let i = 0; i < 40; i++) rows.push(Object.fromEntries(ref.features.map((f, j) => [f, Math.round((0.5 + ((i * 7 + j * 13) % 60) / 10) * 100) / 100])));
  return rows;
}

/** onnxruntime's own answer for `rows`, on the same file, in this process: labels and (where the graph outputs them as a tensor) probabilities. */
async function onnxruntime(file: Buffer, features: string[], rows: Record<string, number>[]) {
  const session = await ort.InferenceSession.create(file);
  try {
    const input = new ort.Tensor('float32', Float32Array.from(rows.flatMap((r) => features.map((f) => r[f]!))), [rows.length, features.length]);
    const [labelName, probName] = session.outputNames as [string, string];
    const tensorProbs = session.outputMetadata.find((m) => m.name === probName)?.isTensor ?? false;
    // skl2onnx's ZipMap output (a sequence of maps) is not one onnxruntime-node can return: labels only then.
    const out = await session.run({ [session.inputNames[0]!]: input }, tensorProbs ? [labelName, probName] : [labelName]);
    const labels = Array.from(out[labelName]!.data as BigInt64Array, Number);
    const probs = tensorProbs ? Array.from(out[probName]!.data as Float32Array) : undefined;
    const k = probs ? probs.length / rows.length : 0;
    return rows.map((_, i) => ({ label: labels[i]!, probabilities: probs?.slice(i * k, (i + 1) * k) }));
  } finally {
    await session.release();
  }
}

interface Prediction {
  prediction: number;
  probabilities?: number[];
}

describe('the platform on a real node: make synth + make deploy, ModelVersions, predictions, promotion, backups, failover, rolls', {
  timeout: 60 * 60_000,
}, () => {
  let c: E2eCluster;
  let logreg: Buffer;
  let mlp: Buffer;
  let ref: Reference;
  let rows: Record<string, number>[];
  let servicePods: Pod[];
  let generation: number;
  let ingress: IngressController | undefined;
  const figures: string[] = [];
  const figure = (line: string) => {
    figures.push(line);
    say(line);
  };

  const kubectl = (args: string[], opts?: { input?: string; timeoutMs?: number }) => c.kubectl(args, opts);
  const apply = (...objects: unknown[]) => kubectl(['apply', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objects }) });
  const deploymentGeneration = async () => Number(await kubectl(['get', 'deployment', SERVICE_NAME, '-o', 'jsonpath={.metadata.generation}']));
  const predictVersion = async (row: Record<string, number>) => {
    const r = await c.predict(MODEL, row);
    assert.equal(r.status, 200, r.body);
    return String(r.json.model_version);
  };
  const batch = async (model: string, instances: Record<string, number>[]) => {
    const r = await c.request('POST', `/api/v1/predict/${model}/batch`, { instances });
    assert.equal(r.status, 200, r.body);
    return r.json as { model_version: string; predictions: Prediction[] };
  };
  const wait = (args: string[], timeout = '180s') => kubectl(['wait', ...args, `--timeout=${timeout}`], { timeoutMs: 200_000 });

  // v1: iris-logreg from a ConfigMap, no sha256 claimed (the status must say what the import computed).
  const v1 = () =>
    modelVersion('iris-1', {
      model: MODEL,
      version: '1',
      source: { configMapRef: { name: 'iris-logreg', key: 'model.onnx' } },
      features: ref.features,
      stage: 'Production',
    });
  // v2: iris-mlp from a URL served inside the cluster, sha256 claimed.
  const v2 = (stage: 'Staging' | 'Production') =>
    modelVersion('iris-2', {
      model: MODEL,
      version: '2',
      source: { url: `http://model-files.${ns}.svc.cluster.local/iris-mlp.onnx` },
      sha256: sha256(mlp),
      features: ref.features,
      stage,
    });

  before(
    async () => {
      logreg = await modelFile('iris-logreg');
      mlp = await modelFile('iris-mlp');
      ref = await reference('iris-logreg');
      rows = rowsOf(ref);
      c = await startE2eCluster();
      say(
        `start-up: ${Object.entries(c.timings)
          .map(([k, v]) => `${k} ${ms(v)}`)
          .join(', ')} (node: ${JSON.stringify(c.node.timings)})`,
      );
    },
    { timeout: 50 * 60_000 },
  );

  after(
    async () => {
      if (figures.length) process.stderr.write(`# figures:\n${figures.map((f) => `#   ${f}`).join('\n')}\n`);
      await ingress?.stop();
      await c?.stop();
    },
    { timeout: 240_000 },
  );

  test('the operator (2 replicas), the service (2) and Redis are Ready; Redis answers in its pod and the service uses it', { timeout: 120_000 }, async () => {
    const operators = await c.pods(OPERATOR_NAME);
    servicePods = await c.pods(SERVICE_NAME);
    const redis = await c.pods('redis');
    assert.equal(operators.filter((p) => p.ready).length, 2, JSON.stringify(operators));
    assert.equal(servicePods.filter((p) => p.ready).length, 2, JSON.stringify(servicePods));
    assert.equal(redis.filter((p) => p.ready).length, 1, JSON.stringify(redis));
    for (const p of [...operators, ...servicePods, ...redis]) assert.equal(p.restarts, 0, `${p.name} restarted`);
    assert.equal((await kubectl(['exec', redis[0]!.name, '--', 'redis-cli', 'ping'])).trim(), 'PONG');
    // The pods run as the manifests say: non-root, no capabilities, read-only root.
    const ids = await kubectl([
      'exec',
      servicePods[0]!.name,
      '--',
      'sh',
      '-c',
      'id -u; grep ^CapEff /proc/1/status; touch /app/x 2>/dev/null || echo read-only',
    ]);
    assert.match(ids, /^1000\nCapEff:\s+0+\nread-only/);
    const health = await c.request('GET', '/health');
    assert.equal(health.status, 200, health.body);
    assert.equal(health.json.control_plane, 'kubernetes');
    assert.deepEqual(health.json.cache, { backend: 'redis', status: 'ok' });
    // deploy.sh made a random API token: model changes need it, and in Kubernetes mode they are kubectl's.
    const token = await c.token();
    assert.ok(token.length >= 32, 'a random token');
    const anonymous = await c.request('DELETE', '/api/v1/models/iris/versions/1');
    assert.equal(anonymous.status, 401, anonymous.body);
    const admin = await c.request('DELETE', '/api/v1/models/iris/versions/1', undefined, { authorization: `Bearer ${token}` });
    assert.equal(admin.status, 409, admin.body);
    assert.equal(admin.json.code, 'MANAGED_BY_KUBERNETES');
    generation = await deploymentGeneration();
  });

  test('a ModelVersion from a ConfigMap: the import Job runs the CLI, stores the file, reports its sha256; Ready once it serves', {
    timeout: 300_000,
  }, async () => {
    const t0 = performance.now();
    await apply(modelConfigMap('iris-logreg', 'model.onnx', logreg), v1());
    const imported = await waitFor(
      'iris-1 Imported',
      async () => {
        const mv = await getMv(c.kc, 'iris-1');
        if (mv?.status?.phase === 'Failed') throw new Error(`Failed: ${mv.status.message}`);
        return mv?.status?.conditions?.find((x) => x.type === 'Imported' && x.status === 'True') ? mv : undefined;
      },
      180_000,
    );
    const importMs = elapsed(t0);
    await wait(['--for=condition=Ready', 'mv/iris-1']);
    const readyMs = elapsed(t0);
    figure(`configMapRef import (apply → Imported): ${ms(importMs)}; apply → Ready (serving on every pod): ${ms(readyMs)}`);
    const mv = (await getMv(c.kc, 'iris-1'))!;
    assert.equal(mv.status?.phase, 'Serving', mv.status?.message);
    assert.equal(imported.status?.artifact?.sha256, sha256(logreg), 'the sha256 the import computed is the file’s');
    assert.equal(mv.status?.artifact?.path, modelFilePath(MODEL, '1'));
    assert.equal(mv.status?.artifact?.sizeBytes, logreg.length);
    assert.deepEqual(mv.status?.features, ref.features);
    assert.equal(mv.status?.url, `http://${SERVICE_NAME}.${ns}.svc/api/v1/predict/${MODEL}`);
    // The Job wrote into the model volume: the node's folder holds the very bytes.
    assert.equal(sha256(readFileSync(join(c.dirs.models, modelFilePath(MODEL, '1')))), sha256(logreg));
    // The import pod ran the real CLI in the image, as the image's user.
    const job = JSON.parse(await kubectl(['get', 'job', mv.status!.importJob!, '-o', 'json'])) as {
      spec: { template: { spec: { containers: { command: string[]; args: string[] }[] } } };
      status: { succeeded?: number };
    };
    assert.equal(job.status.succeeded, 1);
    assert.deepEqual(job.spec.template.spec.containers[0]!.command, ['analytics-api']);
    assert.equal(job.spec.template.spec.containers[0]!.args[0], 'import');
  });

  test('a wrong sha256: phase Failed with the import’s own mismatch message, and a Warning event ImportFailed', { timeout: 300_000 }, async () => {
    const t0 = performance.now();
    const wrong = 'f'.repeat(64);
    await apply(
      modelVersion('iris-wrong-1', {
        model: 'iris-wrong',
        version: '1',
        source: { configMapRef: { name: 'iris-logreg', key: 'model.onnx' } },
        sha256: wrong,
        stage: 'Production',
      }),
    );
    const mv = await waitForPhase(c.kc, 'iris-wrong-1', 'Failed', 240_000);
    figure(`wrong sha256 → Failed: ${ms(elapsed(t0))}`);
    assert.match(mv.status?.message ?? '', new RegExp(`sha256 mismatch: expected ${wrong}, the file has ${sha256(logreg)}`));
    const imported = mv.status?.conditions?.find((x) => x.type === 'Imported');
    assert.equal(imported?.status, 'False');
    assert.equal(imported?.reason, 'ImportFailed');
    const events = JSON.parse(
      await kubectl([
        'get',
        'events',
        '--field-selector',
        'involvedObject.kind=ModelVersion,involvedObject.name=iris-wrong-1,reason=ImportFailed',
        '-o',
        'json',
      ]),
    ) as { items: { type: string; message: string }[] };
    assert.ok(
      events.items.some((e) => e.type === 'Warning' && e.message.includes('sha256 mismatch')),
      JSON.stringify(events.items),
    );
    assert.equal(mv.status?.url, undefined);
    // Refused once, not retried: the Job's podFailurePolicy failed it on the import's exit status 3.
    const job = JSON.parse(await kubectl(['get', 'job', mv.status!.importJob!, '-o', 'json'])) as {
      status: { failed?: number; conditions?: { type: string; status: string; reason?: string }[] };
    };
    assert.equal(job.status.failed, 1, 'one attempt');
    assert.equal(job.status.conditions?.find((x) => x.type === 'Failed' && x.status === 'True')?.reason, 'PodFailurePolicy');
  });

  test('a ModelVersion from a URL served inside the cluster (a pod of the project image behind a Service) imports', { timeout: 300_000 }, async () => {
    const server = `const http = require('node:http'); const fs = require('node:fs');
      http.createServer((req, res) => {
        const name = req.url.slice(1);
        if (!/^[a-z0-9-]+\\.onnx$/.test(name) || !fs.existsSync('/files/' + name)) { res.writeHead(404).end(); return; }
        const bytes = fs.readFileSync('/files/' + name);
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': bytes.length }).end(bytes);
      }).listen(8080);`;
    const labels = { 'app.kubernetes.io/name': 'model-files' };
    await apply(
      { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'model-files', namespace: ns }, binaryData: { 'iris-mlp.onnx': mlp.toString('base64') } },
      {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'model-files', namespace: ns, labels },
        spec: {
          automountServiceAccountToken: false,
          terminationGracePeriodSeconds: 1,
          securityContext: { runAsNonRoot: true, runAsUser: 1000, runAsGroup: 1000, seccompProfile: { type: 'RuntimeDefault' } },
          containers: [
            {
              name: 'files',
              image: 'analytics-api:latest',
              imagePullPolicy: 'IfNotPresent',
              command: ['node', '-e', server],
              ports: [{ containerPort: 8080 }],
              readinessProbe: { tcpSocket: { port: 8080 }, periodSeconds: 1 },
              resources: { requests: { cpu: '50m', memory: '64Mi' }, limits: { cpu: '500m', memory: '256Mi' } },
              securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } },
              volumeMounts: [{ name: 'files', mountPath: '/files', readOnly: true }],
            },
          ],
          volumes: [{ name: 'files', configMap: { name: 'model-files' } }],
        },
      },
      {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: 'model-files', namespace: ns },
        spec: { selector: labels, ports: [{ port: 80, targetPort: 8080 }] },
      },
    );
    await wait(['--for=condition=Ready', 'pod/model-files'], '120s');
    const t0 = performance.now();
    await apply(v2('Staging'));
    const mv = await waitForPhase(c.kc, 'iris-2', 'Imported', 180_000);
    figure(`url import (apply → Imported, Staging): ${ms(elapsed(t0))}`);
    assert.equal(mv.status?.artifact?.sha256, sha256(mlp));
    assert.equal(mv.status?.artifact?.sizeBytes, mlp.length);
    assert.equal(sha256(readFileSync(join(c.dirs.models, modelFilePath(MODEL, '2')))), sha256(mlp));
    // Staging does not serve: v1 still answers.
    assert.equal(await predictVersion(rows[0]!), '1');
  });

  test('predictions through the Service equal onnxruntime’s for the same rows; a repeat is a cache hit from Redis', { timeout: 120_000 }, async () => {
    const answer = await batch(MODEL, rows);
    assert.equal(answer.model_version, '1');
    const expected = await onnxruntime(logreg, ref.features, rows);
    for (const [i, p] of answer.predictions.entries()) assert.equal(p.prediction, expected[i]!.label, `row ${i} label`);
    // Probabilities: iris-logreg ends in a ZipMap, which onnxruntime-node cannot return; the samples
    // hold onnxruntime's own (Python) probabilities for the same file.
    for (const [i, s] of ref.samples.entries()) {
      const got = answer.predictions[i]!.probabilities!;
      for (const [k, p] of s.onnxruntime.probabilities!.entries()) assert.ok(closeTo(got[k]!, p, 1e-5, 1e-7), `row ${i} p[${k}] ${got[k]} vs ${p}`);
    }
    // The single-row route, through the cache: a miss, then a hit, and the key is in Redis.
    const row = { 'sepal length (cm)': 6.1, 'sepal width (cm)': 2.9, 'petal length (cm)': 4.7, 'petal width (cm)': 1.4 };
    const first = await c.predict(MODEL, row);
    assert.equal(first.status, 200, first.body);
    assert.equal(first.headers['x-cache'], 'miss');
    const [one] = await onnxruntime(logreg, ref.features, [row]);
    assert.equal(first.json.prediction, one!.label);
    // The answer is written to Redis just after it is sent: wait for it, or a repeat on the other pod may be first.
    const redisPod = (await c.pods('redis'))[0]!.name;
    const cachedKeys = async () => (await kubectl(['exec', redisPod, '--', 'redis-cli', '--scan', '--pattern', 'pred:iris:*'])).trim();
    await waitFor('the answer in Redis', async () => (await cachedKeys()) !== '', 15_000);
    let hit;
    for (let i = 0; i < 4; i++) {
      // Four repeats through the Service reach both pods (kube-proxy picks at random): all hits, one Redis.
      hit = await c.predict(MODEL, row);
      assert.equal(hit.status, 200, hit.body);
      assert.equal(hit.headers['x-cache'], 'hit');
    }
    assert.equal(hit!.json.prediction, first.json.prediction);
    // status.url, from inside the cluster (cluster DNS, the Service), answers the same.
    const url = (await getMv(c.kc, 'iris-1'))!.status!.url!;
    const script = `fetch(${JSON.stringify(url)}, { method: 'POST', headers: { 'content-type': 'application/json' }, body: ${JSON.stringify(JSON.stringify({ features: row }))} })
      .then(async (r) => console.log(JSON.stringify({ status: r.status, body: await r.json() })), (e) => { console.error(e); process.exit(1); })`;
    const inside = JSON.parse(await kubectl(['exec', 'model-files', '--', 'node', '-e', script])) as {
      status: number;
      body: { prediction: number; model_version: string };
    };
    assert.equal(inside.status, 200);
    assert.equal(inside.body.prediction, first.json.prediction);
    assert.equal(inside.body.model_version, '1');
    const keys = (await cachedKeys()).split('\n').filter(Boolean);
    assert.ok(keys.length > 0, 'Redis holds the cached predictions');
  });

  test('promotion in place: version 2 Production serves on every pod within seconds, under load, with no pod restarted and no request failed', {
    timeout: 300_000,
  }, async () => {
    const load = startLoad(c, MODEL, rows);
    await waitFor('load running', async () => load.report.requests > 50, 30_000);
    const t0 = performance.now();
    await kubectl(['patch', 'mv', 'iris-2', '--type=merge', '-p', '{"spec":{"stage":"Production"}}']);
    const perPod = await waitAllPodsServe(c, MODEL, '2', 60_000);
    const allPodsMs = elapsed(t0);
    await wait(['--for=condition=Ready', 'mv/iris-2'], '60s');
    const servingMs = elapsed(t0);
    // A little more load on the new version, then the report.
    const settled = load.report.requests;
    await waitFor('load after the promotion', async () => load.report.requests > settled + 200, 30_000);
    const report = await load.stop();
    assert.ok(!report.exhausted, 'the load lasted the whole promotion');
    figure(
      `promotion 1 → 2: every pod serves 2 after ${ms(allPodsMs)} (${Object.values(perPod).map(ms).join(', ')}), Serving after ${ms(servingMs)}; ` +
        `load ${report.requests} requests in ${ms(report.ms)} (4 clients), ${report.failures} failed, answers ${JSON.stringify(report.versions)}`,
    );
    assert.equal(report.failures, 0, report.failureSamples.join('\n'));
    assert.ok((report.versions['2'] ?? 0) > 0 && (report.versions['1'] ?? 0) > 0, JSON.stringify(report.versions));
    assert.ok(allPodsMs < 30_000, `every pod served version 2 within 30 s (${allPodsMs} ms)`);
    assert.equal((await getMv(c.kc, 'iris-1'))?.status?.phase, 'Standby');
    for (let i = 0; i < 10; i++) assert.equal(await predictVersion(rows[i]!), '2');
    // In place: the same pods, never restarted, the Deployment untouched.
    const after = await c.pods(SERVICE_NAME);
    assert.deepEqual(after.map((p) => p.uid).sort(), servicePods.map((p) => p.uid).sort(), 'the same service pods');
    for (const p of after) assert.equal(p.restarts, 0, `${p.name} restarted`);
    assert.equal(await deploymentGeneration(), generation, 'the Deployment was not changed');
    // And version 2 answers as onnxruntime does with iris-mlp (probabilities are a tensor there).
    const answer = await batch(MODEL, rows);
    assert.equal(answer.model_version, '2');
    const expected = await onnxruntime(mlp, ref.features, rows);
    for (const [i, p] of answer.predictions.entries()) {
      assert.equal(p.prediction, expected[i]!.label, `row ${i} label`);
      for (const [k, q] of expected[i]!.probabilities!.entries())
        assert.ok(closeTo(p.probabilities![k]!, q, 1e-5, 1e-7), `row ${i} p[${k}] ${p.probabilities![k]} vs ${q}`);
    }
  });

  test('rollback: deleting version 2 serves version 1 again; re-creating the older version while the higher one serves changes nothing', {
    timeout: 300_000,
  }, async () => {
    let t0 = performance.now();
    await kubectl(['delete', 'mv', 'iris-2', '--timeout=60s']);
    await wait(['--for=condition=Ready', 'mv/iris-1'], '60s');
    await waitAllPodsServe(c, MODEL, '1', 30_000);
    figure(`rollback (delete v2 → v1 Ready): ${ms(elapsed(t0))}`);
    assert.equal((await getMv(c.kc, 'iris-1'))?.status?.phase, 'Serving');
    assert.equal(await predictVersion(rows[1]!), '1');

    // Version 2 again (already in the store: the import finds the same bytes), then v1 deleted and re-applied.
    await apply(v2('Production'));
    await wait(['--for=condition=Ready', 'mv/iris-2'], '120s');
    await waitAllPodsServe(c, MODEL, '2', 30_000);
    assert.equal((await getMv(c.kc, 'iris-2'))?.status?.conditions?.find((x) => x.type === 'Imported')?.reason, 'AlreadyInStore');
    const load = startLoad(c, MODEL, rows, { clients: 2 });
    t0 = performance.now();
    await kubectl(['delete', 'mv', 'iris-1', '--timeout=60s']);
    await apply(v1());
    const standby = await waitForPhase(c.kc, 'iris-1', 'Standby', 120_000);
    const report = await load.stop();
    assert.ok(!report.exhausted, 'the load lasted until the older version stood by');
    figure(
      `older version re-created while v2 serves: Standby after ${ms(elapsed(t0))}; ${report.requests} requests, ${report.failures} failed, answers ${JSON.stringify(report.versions)}`,
    );
    assert.match(standby.status?.message ?? '', /served by the higher version 2/);
    assert.equal(report.failures, 0, report.failureSamples.join('\n'));
    assert.deepEqual(Object.keys(report.versions), ['2'], 'only version 2 answered meanwhile');
    assert.equal((await getMv(c.kc, 'iris-2'))?.status?.phase, 'Serving');
    const routing = JSON.parse(await kubectl(['get', 'configmap', 'analytics-api-routing', '-o', 'jsonpath={.data.routing\\.json}'])) as {
      models: Record<string, { version: string }>;
    };
    assert.equal(routing.models[MODEL]?.version, '2');
  });

  test('the backup CronJob, run now with kubectl create job --from, writes an archive that `analytics-api backup verify` accepts', {
    timeout: 300_000,
  }, async () => {
    const cronJob = backupCronJobName(MODEL);
    const t0 = performance.now();
    await kubectl(['create', 'job', '--from', `cronjob/${cronJob}`, 'backup-now']);
    await wait(['--for=condition=Complete', 'job/backup-now'], '180s');
    figure(`backup Job (create → Complete): ${ms(elapsed(t0))}`);
    // On the host, against the node's folder behind the backups volume.
    const verify = await runCommand(process.execPath, [
      join(root, 'bin', 'analytics-api.js'),
      'backup',
      'verify',
      '--latest',
      '--dest',
      c.dirs.backups,
      '--model',
      MODEL,
      '--json',
    ]);
    assert.equal(verify.code, 0, verify.stderr);
    const result = JSON.parse(verify.stdout) as { model: string; files: number; bytes: number };
    assert.equal(result.model, MODEL);
    assert.ok(result.files >= 4, `the archive holds both versions' files (${result.files})`);
    assert.ok(result.bytes >= logreg.length + mlp.length, `${result.bytes} bytes`);
  });

  test('the leading operator frozen and its pod force-deleted: the other replica takes the Lease once it expires, and the next change lands', {
    timeout: 300_000,
  }, async () => {
    const old = await leader(c);
    const operators = await c.pods(OPERATOR_NAME);
    assert.ok(old && operators.some((p) => p.name === old), `the Lease names a running operator pod (${old})`);
    // A leader that dies without a word (a hung process, a lost node): SIGSTOP, so it neither renews
    // nor releases the Lease on the SIGTERM the deletion sends, then the pod force-deleted.
    const pid = await containerPid(c, old!);
    const t0 = performance.now();
    process.kill(pid, 'SIGSTOP');
    await kubectl(['delete', 'pod', old!, '--grace-period=0', '--force']);
    const next = await waitFor(
      'another replica holding the Lease',
      async () => {
        const holder = await leader(c);
        return holder && holder !== old ? holder : undefined;
      },
      120_000,
    );
    const takeoverMs = elapsed(t0);
    assert.ok(
      operators.some((p) => p.name === next),
      `the standby replica took over (${next}), not the replacement pod`,
    );
    // The Lease expired (15 s, the operator's default): nobody released it.
    assert.ok(takeoverMs >= 10_000, `took over after the Lease expired, not before (${takeoverMs} ms)`);
    // The next change: archive version 2, so version 1 serves again.
    const t1 = performance.now();
    await kubectl(['patch', 'mv', 'iris-2', '--type=merge', '-p', '{"spec":{"stage":"Archived"}}']);
    await wait(['--for=condition=Ready', 'mv/iris-1'], '120s');
    await waitAllPodsServe(c, MODEL, '1', 30_000);
    figure(`operator failover (leader frozen, pod force-deleted): Lease taken over after ${ms(takeoverMs)}; archive v2 → v1 Ready after ${ms(elapsed(t1))}`);
    assert.equal((await getMv(c.kc, 'iris-2'))?.status?.phase, 'Archived');
    assert.equal(await predictVersion(rows[2]!), '1');
  });

  test('a Deployment roll (kubectl rollout restart) under load: new pods, no request failed', { timeout: 420_000 }, async () => {
    const before = await c.pods(SERVICE_NAME);
    const load = startLoad(c, MODEL, rows);
    await waitFor('load running', async () => load.report.requests > 50, 30_000);
    const t0 = performance.now();
    await kubectl(['rollout', 'restart', `deployment/${SERVICE_NAME}`]);
    await kubectl(['rollout', 'status', `deployment/${SERVICE_NAME}`, '--timeout=300s'], { timeoutMs: 320_000 });
    // Until the old pods are gone (preStop, drain, exit), not only until the new ones are ready.
    await waitFor(
      'the old service pods gone',
      async () => {
        const now = await c.pods(SERVICE_NAME);
        return !now.some((p) => before.some((b) => b.uid === p.uid));
      },
      120_000,
    );
    const rollMs = elapsed(t0);
    const report: LoadReport = await load.stop();
    assert.ok(!report.exhausted, 'the load lasted the whole roll');
    figure(`rollout restart: ${ms(rollMs)} until the old pods were gone; load ${report.requests} requests, ${report.failures} failed`);
    assert.equal(report.failures, 0, report.failureSamples.join('\n'));
    const now = await c.pods(SERVICE_NAME);
    assert.equal(now.filter((p) => p.ready).length, 2);
    for (const p of now) assert.ok(!before.some((b) => b.uid === p.uid), `${p.name} is a new pod`);
    await waitAllPodsServe(c, MODEL, '1', 30_000);
  });

  test('through the ingress (Traefik, the manifests’ Ingress): predictions equal onnxruntime’s, and the service sees the client’s address', {
    timeout: 300_000,
  }, async () => {
    const t0 = performance.now();
    ingress = await startIngressController(c.cp, { buildTimeoutMs: 40 * 60_000 });
    await ingress.waitForIngress(ns, SERVICE_NAME, 60_000);
    figure(`ingress: Traefik ${ingress.version} routing the Ingress ${ms(elapsed(t0))} after its start`);
    const pods = (await c.pods(SERVICE_NAME)).filter((p) => p.ready);
    const expected = await onnxruntime(logreg, ref.features, rows);
    const ids: string[] = [];
    for (const [i, row] of rows.slice(0, 20).entries()) {
      const id = `e2e-ingress-${process.pid}-${i}`;
      ids.push(id);
      const r = await http(`${ingress.url}/api/v1/predict/${MODEL}`, {
        method: 'POST',
        body: JSON.stringify({ features: row }),
        headers: { 'content-type': 'application/json', 'x-request-id': id },
      });
      assert.equal(r.status, 200, r.body);
      assert.equal(r.json.model_version, '1');
      assert.equal(r.json.prediction, expected[i]!.label, `row ${i} label`);
    }
    // Traefik sent them straight to the service pods' endpoints on the node's bridge.
    const entries = ingress.accessLog().filter((e) => e.RequestPath === `/api/v1/predict/${MODEL}`);
    assert.equal(entries.length, 20);
    for (const e of entries) {
      assert.equal(e.DownstreamStatus, 200);
      assert.ok(
        pods.some((p) => e.ServiceURL === `http://${p.ip}:8080`),
        `${e.ServiceURL} is a service pod (${pods.map((p) => p.ip).join(', ')})`,
      );
    }
    // The service logged the client (this host, 127.0.0.1, from Traefik's X-Forwarded-For), not the proxy:
    // rate limits and the wrong-token lockout count clients, not the ingress.
    const logs = await kubectl(['logs', '-l', `app.kubernetes.io/name=${SERVICE_NAME}`, '--tail=2000', '--prefix=false']);
    const lines = logs
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { reqId?: string; req?: { remoteAddress?: string } })
      .filter((l) => l.reqId && ids.includes(l.reqId) && l.req);
    assert.equal(lines.length, 20, 'one request line per prediction, under the x-request-id sent');
    assert.deepEqual([...new Set(lines.map((l) => l.req!.remoteAddress))], ['127.0.0.1']);
  });

  test('a canary on the real node: version 3 (spec.rollout, 2 s steps) walks 20 → 50 → 100 % under load with no request failed, then serves alone', {
    timeout: 300_000,
  }, async () => {
    const load = startLoad(c, MODEL, rows);
    await waitFor('load running', async () => load.report.requests > 50, 30_000);
    const t0 = performance.now();
    await apply(
      modelConfigMap('iris-mlp-3', 'model.onnx', mlp),
      modelVersion('iris-3', {
        model: MODEL,
        version: '3',
        source: { configMapRef: { name: 'iris-mlp-3', key: 'model.onnx' } },
        sha256: sha256(mlp),
        features: ref.features,
        stage: 'Production',
        rollout: { strategy: 'Canary', steps: [20, 50, 100], interval: '2s', analysis: { minRequests: 30, maxErrorRate: 0.01 } },
      }),
    );
    const seen = new Set<string>();
    const done = await waitFor(
      'iris-3 Serving alone',
      async () => {
        const mv = await getMv(c.kc, 'iris-3');
        if (mv?.status?.phase === 'Failed') throw new Error(`Failed: ${mv.status.message}`);
        const r = mv?.status?.rollout;
        if (r) seen.add(`${r.step}@${r.weight}`);
        if (r?.phase === 'RolledBack') throw new Error(`rolled back: ${r.failedCheck}`);
        return r?.phase === 'Succeeded' && mv?.status?.phase === 'Serving' && mv;
      },
      180_000,
      250,
    );
    const doneMs = elapsed(t0);
    await waitAllPodsServe(c, MODEL, '3', 30_000);
    const settled = load.report.requests;
    await waitFor('load after the rollout', async () => load.report.requests > settled + 200, 30_000);
    const report = await load.stop();
    assert.ok(!report.exhausted, 'the load lasted the whole rollout');
    figure(
      `canary 20 → 50 → 100 % (2 s steps): Serving alone ${ms(doneMs)} after the apply (import included), steps seen ${[...seen].join(', ')}; ` +
        `load ${report.requests} requests in ${ms(report.ms)}, ${report.failures} failed, answers ${JSON.stringify(report.versions)}`,
    );
    assert.equal(report.failures, 0, report.failureSamples.join('\n'));
    assert.ok(seen.has('1/3@20') && seen.has('2/3@50'), `steps seen: ${[...seen].join(', ')}`);
    assert.equal(done.status?.weight, 100);
    assert.ok((done.status?.rollout?.figures?.requests ?? 0) >= 30);
    assert.ok((report.versions['1'] ?? 0) > 0 && (report.versions['3'] ?? 0) > 0, JSON.stringify(report.versions));
    await waitFor('iris-1 Standby', async () => (await getMv(c.kc, 'iris-1'))?.status?.phase === 'Standby', 30_000);
    for (let i = 0; i < 10; i++) assert.equal(await predictVersion(rows[i]!), '3');
  });
});
