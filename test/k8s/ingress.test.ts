import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, test } from 'node:test';
import { figures } from '../../contract/figures.ts';
import { manifestObjects } from '../../infra/app.ts';
import { INGRESS_PATHS } from '../../infra/charts/service-chart.ts';
import { INGRESS_CLASS, NAMESPACE, SERVICE_NAME, selectorFor } from '../../infra/names.ts';
import { resolveSettings } from '../../infra/settings.ts';
import { startControlPlane, waitFor, type ControlPlane } from './control-plane.ts';
import { startIngressController, TRAEFIK_CONTROLLER, TRAEFIK_NAMESPACE, type AccessLogEntry, type IngressController } from './ingress.ts';
import { NODE_NETWORK, startRealNode, type RealNode } from './real-node.ts';

// The project's Ingress (synthesized from infra/ with the default settings, unchanged) served by
// Traefik, the controller `make cluster` installs in kind: here built from source and run next to
// the test control plane, routing to a pod of the project's image on the real node. What a user
// of the kind cluster checks at http://localhost/ is checked at the controller's address.

const IMAGE = 'analytics-api:latest';
const TOKEN = 'ingress-test-token';
const repoRoot = join(import.meta.dirname, '..', '..');
const iris = JSON.parse(readFileSync(join(repoRoot, 'models', 'iris-logreg.json'), 'utf8')) as {
  samples: { features: Record<string, number>; onnxruntime: { label: number; probabilities: number[] } }[];
};

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function http(url: string, opts: { method?: string; headers?: Record<string, string>; body?: Buffer | string; timeoutMs?: number } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: opts.method ?? 'GET', headers: opts.headers, timeout: opts.timeoutMs ?? 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(opts.body);
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return !/^State:\s*Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return false;
  }
}

/** The project's Namespace, Service and Ingress as `make synth` writes them for the default settings. */
function projectObjects() {
  const objects = manifestObjects(resolveSettings({})).flatMap((f) => f.objects) as { kind: string; metadata: { name: string } }[];
  const pick = (kind: string, name: string) => {
    const o = objects.find((x) => x.kind === kind && x.metadata.name === name);
    assert.ok(o, `${kind}/${name} in the synthesized manifests`);
    return o;
  };
  return { namespace: pick('Namespace', NAMESPACE), service: pick('Service', SERVICE_NAME), ingress: pick('Ingress', SERVICE_NAME) };
}

/** A pod of the project's image, hardened as real-node.test.ts runs it, selected by the project's Service. */
function apiPod() {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'api', namespace: NAMESPACE, labels: selectorFor(SERVICE_NAME) },
    spec: {
      automountServiceAccountToken: false,
      terminationGracePeriodSeconds: 2,
      securityContext: { runAsNonRoot: true, runAsUser: 1000, runAsGroup: 1000, fsGroup: 1000, seccompProfile: { type: 'RuntimeDefault' } },
      containers: [
        {
          name: 'api',
          image: IMAGE,
          imagePullPolicy: 'IfNotPresent',
          command: ['node', 'service/main.ts'],
          env: [
            { name: 'SAMPLE_MODELS_DIR', value: '/app/sample-models' },
            { name: 'MODELS_DIR', value: '/app/models' },
            { name: 'API_TOKEN', value: TOKEN },
          ],
          ports: [
            { name: 'http', containerPort: 8080 },
            { name: 'grpc', containerPort: 8081 },
          ],
          readinessProbe: { httpGet: { path: '/ready', port: 8080 }, periodSeconds: 1 },
          resources: { requests: { cpu: '100m', memory: '256Mi' }, limits: { cpu: '1', memory: '1Gi' } },
          securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, runAsNonRoot: true, capabilities: { drop: ['ALL'] } },
          volumeMounts: [
            { name: 'tmp', mountPath: '/tmp' },
            { name: 'models', mountPath: '/app/models' },
          ],
        },
      ],
      volumes: [
        { name: 'tmp', emptyDir: {} },
        { name: 'models', emptyDir: {} },
      ],
    },
  };
}

describe('the project Ingress through Traefik (the kind cluster controller) to a pod of the project image on a real node', { timeout: 60 * 60_000 }, () => {
  let cp: ControlPlane;
  let node: RealNode;
  let ingress: IngressController;
  let podIP = '';

  const kubectl = async (args: string[], input?: string) => {
    const r = await cp.kubectl(args, { ...(input !== undefined ? { input } : {}), timeoutMs: 60_000 });
    assert.equal(r.code, 0, `kubectl ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  const apply = (...objects: unknown[]) => kubectl(['apply', '-f', '-'], objects.map((o) => JSON.stringify(o)).join('\n'));
  const lastAccess = (path: string): AccessLogEntry | undefined => ingress.accessLog().findLast((e) => e.RequestPath.startsWith(path));

  before(
    async () => {
      cp = await startControlPlane({ controllers: true, kwok: false });
      // A cold machine builds the images and Traefik first: minutes.
      node = await startRealNode(cp, { imagesTimeoutMs: 40 * 60_000 });
      ingress = await startIngressController(cp, { buildTimeoutMs: 40 * 60_000 });
      process.stderr.write(
        `[ingress.test] node ready in ${node.startupMs} ms; Traefik ${ingress.version} at ${ingress.url} in ${ingress.startupMs} ms: ${JSON.stringify(ingress.timings)}\n`,
      );
      const { namespace, service, ingress: ing } = projectObjects();
      await apply(namespace);
      await apply(service, ing, apiPod());
      const pod = await waitFor(
        'pod api Ready',
        async () => {
          const p = JSON.parse(await kubectl(['get', 'pod', 'api', '-n', NAMESPACE, '-o', 'json'])) as {
            status?: { podIP?: string; conditions?: { type: string; status: string }[]; containerStatuses?: { state?: { waiting?: { reason?: string } } }[] };
          };
          const waiting = p.status?.containerStatuses?.[0]?.state?.waiting?.reason;
          if (waiting && /ErrImage|ImagePull|CrashLoop|CreateContainer/.test(waiting)) throw new Error(waiting);
          return p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ? p : false;
        },
        180_000,
      );
      podIP = pod.status?.podIP ?? '';
      const t0 = performance.now();
      await ingress.waitForIngress(NAMESPACE, SERVICE_NAME, 60_000);
      process.stderr.write(`[ingress.test] Ingress routed ${Math.round(performance.now() - t0)} ms after the pod was Ready\n`);
    },
    { timeout: 50 * 60_000 },
  );

  after(
    async () => {
      await ingress?.stop(); // a no-op after the stop() test
      await node?.stop();
      await cp?.stop();
    },
    { timeout: 180_000 },
  );

  test('Traefik serves the IngressClass the manifests name, with the RBAC its documentation gives, not more', { timeout: 60_000 }, async () => {
    assert.equal(ingress.ingressClass, INGRESS_CLASS);
    assert.equal(ingress.version, 'v3.7.13');
    assert.equal((await kubectl(['get', 'ingressclass', INGRESS_CLASS, '-o', 'jsonpath={.spec.controller}'])).trim(), TRAEFIK_CONTROLLER);
    const sa = `system:serviceaccount:${TRAEFIK_NAMESPACE}:traefik`;
    const can = async (verb: string, resource: string, ...more: string[]) =>
      (await cp.kubectl(['auth', 'can-i', verb, resource, ...more, '--all-namespaces', `--as=${sa}`])).stdout.trim();
    assert.equal(await can('watch', 'ingresses.networking.k8s.io'), 'yes');
    assert.equal(await can('list', 'endpointslices.discovery.k8s.io'), 'yes');
    assert.equal(await can('watch', 'nodes'), 'yes');
    assert.equal(await can('update', 'ingresses.networking.k8s.io', '--subresource=status'), 'yes');
    assert.equal(await can('create', 'pods'), 'no');
    assert.equal(await can('update', 'ingresses.networking.k8s.io'), 'no');
  });

  test("the Ingress is the project's (class, paths) and Traefik publishes its address in the Ingress status", { timeout: 60_000 }, async () => {
    const ing = JSON.parse(await kubectl(['get', 'ingress', SERVICE_NAME, '-n', NAMESPACE, '-o', 'json'])) as {
      spec: { ingressClassName: string; rules: { http: { paths: { path: string }[] } }[] };
    };
    assert.equal(ing.spec.ingressClassName, INGRESS_CLASS);
    assert.deepEqual(ing.spec.rules[0].http.paths.map((p) => p.path).sort(), [...INGRESS_PATHS].sort());
    const address = await waitFor(
      'the Ingress status address',
      async () => (await kubectl(['get', 'ingress', SERVICE_NAME, '-n', NAMESPACE, '-o', 'jsonpath={.status.loadBalancer.ingress[0].ip}'])).trim(),
      30_000,
    );
    assert.equal(address, ingress.host);
  });

  test("a prediction through the controller equals the sample model's reference answer", { timeout: 60_000 }, async () => {
    const sample = iris.samples[0];
    const r = await http(`${ingress.url}/api/v1/predict/iris-logreg`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ features: sample.features }),
    });
    assert.equal(r.status, 200, r.body);
    const body = JSON.parse(r.body) as { prediction: number; probabilities: number[]; model_id: string; model_version: string };
    assert.equal(body.model_id, 'iris-logreg');
    assert.equal(body.prediction, sample.onnxruntime.label);
    assert.equal(body.probabilities.length, sample.onnxruntime.probabilities.length);
    for (const [i, p] of body.probabilities.entries()) assert.ok(Math.abs(p - sample.onnxruntime.probabilities[i]) < 1e-6, `probability ${i}: ${p}`);
    // Traefik answered it, through the Ingress's router, from the pod's endpoint on the bridge.
    const entry = lastAccess('/api/v1/predict/iris-logreg');
    assert.ok(entry, 'in the access log');
    assert.equal(entry.DownstreamStatus, 200);
    assert.match(entry.RouterName ?? '', new RegExp(`^${NAMESPACE}-${SERVICE_NAME}-`));
    assert.equal(entry.ServiceURL, `http://${podIP}:8080`);
    assert.ok(podIP.startsWith(NODE_NETWORK.podCIDR.split('.').slice(0, 3).join('.')), podIP);
  });

  test('/health, /docs and /v2 go through; paths the Ingress does not list (/metrics) do not', { timeout: 60_000 }, async () => {
    const health = await http(`${ingress.url}/health`);
    assert.equal(health.status, 200, health.body);
    assert.match(health.body, /iris-logreg/);
    const docs = await http(`${ingress.url}/docs`, { headers: { accept: 'text/html' } });
    assert.equal(docs.status, 200);
    assert.match(String(docs.headers['content-type']), /text\/html/);
    const spec = await http(`${ingress.url}/docs/json`);
    assert.equal(spec.status, 200);
    assert.match((JSON.parse(spec.body) as { openapi: string }).openapi, /^3\./);
    const v2 = await http(`${ingress.url}/v2/models/iris-logreg`);
    assert.equal(v2.status, 200, v2.body);
    assert.equal((JSON.parse(v2.body) as { name: string }).name, 'iris-logreg');
    const metrics = await http(`${ingress.url}/metrics`);
    assert.equal(metrics.status, 404, 'Traefik has no route for /metrics');
    assert.equal((await http(`http://${podIP}:8080/metrics`)).status, 200, 'while the pod serves it');
  });

  test('a 10 MiB upload reaches the service whole (no 413 from the controller); over 64 MiB the service itself answers 413', {
    timeout: 120_000,
  }, async () => {
    const upload = (bytes: number) =>
      http(`${ingress.url}/api/v1/models?name=big&version=1`, {
        method: 'POST',
        headers: { 'content-type': 'application/octet-stream', authorization: `Bearer ${TOKEN}` },
        body: Buffer.alloc(bytes, 7),
        timeoutMs: 60_000,
      });
    const tenMiB = 10 * 2 ** 20;
    const r = await upload(tenMiB);
    // The service read all of it and judged it: not an ONNX model.
    assert.equal(r.status, 400, r.body);
    assert.equal((JSON.parse(r.body) as { code: string }).code, 'INVALID_MODEL');
    assert.equal(lastAccess('/api/v1/models')?.RequestContentSize, tenMiB);
    const over = await upload(figures.bodyLimitBytes + 2 ** 20);
    assert.equal(over.status, 413);
    assert.equal((JSON.parse(over.body) as { code: string }).code, 'BODY_TOO_LARGE', 'the service’s problem+json, not a controller page');
  });

  test('stop() ends Traefik, frees its port, removes its files and its cluster objects', { timeout: 60_000 }, async () => {
    const pid = Number(readFileSync(join(ingress.dir, 'pid'), 'utf8'));
    assert.ok(alive(pid), 'Traefik runs');
    await ingress.stop();
    assert.equal(alive(pid), false);
    await assert.rejects(http(`${ingress.url}/health`), /ECONNREFUSED/);
    assert.equal(existsSync(ingress.dir), false);
    assert.deepEqual(
      readdirSync(join(cp.dir, 'cleanup.d')).filter((f) => f.includes('traefik')),
      [],
    );
    const left = await cp.kubectl(['get', 'ingressclass', INGRESS_CLASS, '--ignore-not-found', '-o', 'name']);
    assert.equal(left.stdout.trim(), '');
  });
});

describe('a test process SIGKILLed with Traefik up leaves no Traefik behind (the control plane watchdog runs its clean-up)', { timeout: 10 * 60_000 }, () => {
  test('SIGKILL: the Traefik process and its folder are gone', { timeout: 5 * 60_000 }, async () => {
    // The API server alone is enough for Traefik to start (no Service has endpoints, nothing is routed).
    const script = `
      import { startControlPlane } from ${JSON.stringify(new URL('./control-plane.ts', import.meta.url).href)};
      import { startIngressController } from ${JSON.stringify(new URL('./ingress.ts', import.meta.url).href)};
      const cp = await startControlPlane();
      const ingress = await startIngressController(cp);
      console.log(JSON.stringify({ cpDir: cp.dir, dir: ingress.dir, url: ingress.url }));
      setInterval(() => {}, 1000);
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    const exited = new Promise<NodeJS.Signals | null>((r) => child.on('exit', (_code, signal) => r(signal)));
    const first = await Promise.race([
      new Promise<string>((r) => createInterface({ input: child.stdout! }).once('line', r)),
      exited.then(() => {
        throw new Error('the child exited before Traefik was up');
      }),
    ]);
    const { cpDir, dir, url } = JSON.parse(first) as { cpDir: string; dir: string; url: string };
    const pid = Number(readFileSync(join(dir, 'pid'), 'utf8'));
    assert.ok(alive(pid));
    assert.equal((await http(`${url}/health`)).status, 404, 'Traefik answers (no route yet)');
    child.kill('SIGKILL');
    assert.equal(await exited, 'SIGKILL');
    await waitFor('the watchdog stopping Traefik and removing the folders', async () => !alive(pid) && !existsSync(dir) && !existsSync(cpDir), 120_000);
  });
});
