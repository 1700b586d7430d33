import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { connect, createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AppsV1Api, CustomObjectsApi } from '@kubernetes/client-node';
import type { KubeConfig, V1Deployment } from '@kubernetes/client-node';
import { API_VERSION, GROUP, KIND, PLURAL, VERSION } from '../../contract/model-version.ts';
import type { ModelVersion, ModelVersionSpecInput } from '../../contract/model-version.ts';
import { modelVersionCrd } from '../../contract/crd.ts';
import { modelFilePath } from '../../contract/store-layout.ts';
import { BACKUPS_PVC, LABELS, MODELS_PVC, NAMESPACE, SERVICE_NAME } from '../../contract/names.ts';
import { IMPORT_COMPONENT } from '../../operator/builders/import-job.ts';
import type { PolicyRule } from '../../contract/rbac.ts';
import { freePort } from '../helpers/processes.ts';
import { startControlPlane, waitFor, type ControlPlane } from '../k8s/control-plane.ts';

// The operator's tests on a real control plane: the CRD installed, the `analytics` namespace, the
// service Deployment (any image: kwok runs no containers), and operator processes started as a
// person would (`node operator/main.ts` with a kubeconfig).

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const NODE = process.execPath;
export const ns = NAMESPACE;

/**
 * kwok runs no containers, so an import pod would "complete" with no result and the operator would
 * fail the version. On kwok's fake node the import pods instead report what the import command
 * would, read from their own arguments (--model, --version, --features, --sha256: the import
 * fails unless the bytes have that sum, so on success it reports it), with a size of 0; without
 * --sha256 the sum says it is fake (FAKE_IMPORT_SHA256), and features default to ["feature_0"].
 * Tests that need real imports run on the real node (test/e2e/, lifecycle.test.ts).
 */
export const FAKE_IMPORT_SHA256 = 'kwok-fake-import-no-container-ran';

export function fakeImportStages(stages: string): string {
  const docs = stages.split('\n---\n');
  const i = docs.findIndex((d) => /^ {2}name: pod-complete$/m.test(d));
  const jobOwned = "      values:\n      - 'Job'\n";
  if (i < 0 || !docs[i]!.includes(jobOwned)) throw new Error("kwok's pod-complete stage changed: update fakeImportStages");
  docs[i] = docs[i]!.replace(
    jobOwned,
    `${jobOwned}    - key: '.metadata.labels["${LABELS.component}"]'\n      operator: 'NotIn'\n      values:\n      - '${IMPORT_COMPONENT}'\n`,
  );
  docs.splice(i + 1, 0, FAKE_IMPORT_STAGE);
  return docs.join('\n---\n');
}

const FAKE_IMPORT_STAGE = `apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: pod-complete-fake-import
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  selector:
    matchExpressions:
    - key: '.metadata.deletionTimestamp'
      operator: 'DoesNotExist'
    - key: '.status.phase'
      operator: 'In'
      values:
      - 'Running'
    - key: '.metadata.labels["${LABELS.component}"]'
      operator: 'In'
      values:
      - '${IMPORT_COMPONENT}'
  next:
    statusTemplate: |
      {{ $now := Now }}
      {{ $container := index .spec.containers 0 }}
      {{ $args := $container.args }}
      {{ $model := "" }}{{ $version := "" }}{{ $features := list "feature_0" }}{{ $sha := "${FAKE_IMPORT_SHA256}" }}
      {{ range $i, $a := $args }}{{ if eq $a "--model" }}{{ $model = index $args (add1 $i) }}{{ end }}{{ if eq $a "--version" }}{{ $version = index $args (add1 $i) }}{{ end }}{{ if eq $a "--features" }}{{ $features = index $args (add1 $i) | fromJson }}{{ end }}{{ if eq $a "--sha256" }}{{ $sha = index $args (add1 $i) }}{{ end }}{{ end }}
      {{ $result := dict "model" $model "version" $version "path" (printf "${modelFilePath('%s', '%s')}" $model $version) "sha256" $sha "sizeBytes" 0 "features" $features "alreadyPresent" false }}
      containerStatuses:
      - image: {{ $container.image | Quote }}
        name: {{ $container.name | Quote }}
        ready: false
        restartCount: 0
        started: false
        state:
          terminated:
            exitCode: 0
            finishedAt: {{ $now | Quote }}
            reason: Completed
            startedAt: {{ $now | Quote }}
            message: {{ $result | toJson | Quote }}
      phase: Succeeded`;

export async function startCluster(opts: { controllers?: boolean } = {}): Promise<ControlPlane> {
  const cp = await startControlPlane({ controllers: opts.controllers ?? true, kwokStages: fakeImportStages, log: !!process.env.K8S_TEST_LOG });
  await installCrd(cp);
  const r = await cp.kubectl(['create', 'namespace', ns]);
  assert.equal(r.code, 0, r.stderr);
  if (opts.controllers ?? true) {
    await waitFor(`ServiceAccount ${ns}/default`, async () => (await cp.kubectl(['get', 'sa', 'default', '-n', ns])).code === 0, 60_000);
    // The volumes first: once the PV controller has seen them (Available), it binds the claims at
    // once instead of at its next 15 s resync. Pods wait for their claims to be bound.
    const [pvs, pvcs] = [0, 1].map((i) => [MODELS_PVC, BACKUPS_PVC].map((name) => storeVolume(name)[i]!));
    await kubectlApply(cp, ...pvs!);
    await waitFor(
      'PersistentVolumes available',
      async () => {
        const r = await cp.kubectl(['get', 'pv', '-o', 'jsonpath={.items[*].status.phase}']);
        return r.stdout.trim() === 'Available Available';
      },
      60_000,
    );
    await kubectlApply(cp, ...pvcs!);
    await waitFor(
      'PersistentVolumeClaims bound',
      async () => {
        const r = await cp.kubectl(['get', 'pvc', '-n', ns, '-o', 'jsonpath={.items[*].status.phase}']);
        return r.stdout.trim() === 'Bound Bound';
      },
      60_000,
    );
  }
  return cp;
}

/** A PersistentVolume and its claim (kwok runs no containers: nothing is mounted, the scheduler binds it). */
function storeVolume(name: string) {
  return [
    {
      apiVersion: 'v1',
      kind: 'PersistentVolume',
      metadata: { name: `${name}-pv` },
      spec: {
        capacity: { storage: '1Gi' },
        accessModes: ['ReadWriteMany'],
        storageClassName: '',
        hostPath: { path: `/var/local/${name}` },
        claimRef: { namespace: ns, name },
      },
    },
    {
      apiVersion: 'v1',
      kind: 'PersistentVolumeClaim',
      metadata: { name, namespace: ns },
      spec: { accessModes: ['ReadWriteMany'], storageClassName: '', volumeName: `${name}-pv`, resources: { requests: { storage: '1Gi' } } },
    },
  ];
}

export async function installCrd(cp: ControlPlane): Promise<void> {
  const r = await cp.kubectl(['apply', '--server-side', '-f', '-'], { input: JSON.stringify(modelVersionCrd()) });
  assert.equal(r.code, 0, r.stderr);
  const w = await cp.kubectl(['wait', '--for=condition=Established', '--timeout=60s', `crd/${PLURAL}.${GROUP}`]);
  assert.equal(w.code, 0, w.stderr);
}

export async function modelFile(name: string): Promise<Buffer> {
  return readFile(join(root, 'models', `${name}.onnx`));
}

export async function modelFeatures(name: string): Promise<string[]> {
  return (JSON.parse(await readFile(join(root, 'models', `${name}.json`), 'utf8')) as { features: string[] }).features;
}

export const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** A ConfigMap holding a model as binaryData (what `kubectl create configmap --from-file` makes). */
export function modelConfigMap(name: string, key: string, bytes: Uint8Array) {
  return { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: ns }, binaryData: { [key]: Buffer.from(bytes).toString('base64') } };
}

export function modelVersion(name: string, spec: ModelVersionSpecInput) {
  return { apiVersion: API_VERSION, kind: KIND, metadata: { name, namespace: ns }, spec };
}

export async function kubectlApply(cp: ControlPlane, ...objects: unknown[]): Promise<void> {
  const r = await cp.kubectl(['apply', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objects }) });
  assert.equal(r.code, 0, `kubectl apply: ${r.stderr}`);
}

export async function getMv(kc: KubeConfig, name: string): Promise<ModelVersion | undefined> {
  try {
    return (await kc
      .makeApiClient(CustomObjectsApi)
      .getNamespacedCustomObject({ group: GROUP, version: VERSION, plural: PLURAL, namespace: ns, name })) as ModelVersion;
  } catch (err) {
    if ((err as { code?: number }).code === 404) return undefined;
    throw err;
  }
}

export async function listMvs(kc: KubeConfig): Promise<ModelVersion[]> {
  const list = (await kc.makeApiClient(CustomObjectsApi).listNamespacedCustomObject({ group: GROUP, version: VERSION, plural: PLURAL, namespace: ns })) as {
    items: ModelVersion[];
  };
  return list.items;
}

export async function waitForPhase(kc: KubeConfig, name: string, phase: string, timeoutMs = 60_000): Promise<ModelVersion> {
  return waitFor(
    `ModelVersion ${name} phase ${phase}`,
    async () => {
      const mv = await getMv(kc, name);
      if (mv?.status?.phase === phase && mv.status.observedGeneration === mv.metadata.generation) return mv;
      if (mv?.status?.phase && mv.status.phase !== phase) throw new Error(`phase ${mv.status.phase}: ${mv.status.message ?? ''}`);
      return undefined;
    },
    timeoutMs,
  );
}

/** The service Deployment, as the manifests make it (rolling update, never below the wanted replicas). */
export async function createServiceDeployment(kc: KubeConfig, replicas = 2): Promise<void> {
  const labels = { 'app.kubernetes.io/name': SERVICE_NAME };
  const body: V1Deployment = {
    metadata: { name: SERVICE_NAME, namespace: ns, labels },
    spec: {
      replicas,
      selector: { matchLabels: labels },
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } },
      template: {
        metadata: { labels },
        spec: { containers: [{ name: 'api', image: 'analytics-api:test' }] },
      },
    },
  };
  await kc.makeApiClient(AppsV1Api).createNamespacedDeployment({ namespace: ns, body });
}

export async function getDeployment(kc: KubeConfig): Promise<V1Deployment> {
  return kc.makeApiClient(AppsV1Api).readNamespacedDeployment({ name: SERVICE_NAME, namespace: ns });
}

export interface OperatorProcess {
  child: ChildProcess;
  identity: string;
  port: number;
  output(): string;
  /** GET a path of the metrics/probe server. */
  get(path: string): Promise<{ status: number; body: string }>;
  metric(name: string, labels?: Record<string, string>): Promise<number>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  exited: Promise<number | null>;
}

const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of running) c.kill('SIGKILL');
});

/** `node operator/main.ts` against the control plane; resolves once /readyz answers 200. */
export async function startOperator(cp: ControlPlane, identity: string, env: Record<string, string> = {}, waitReady = true): Promise<OperatorProcess> {
  const port = await freePort();
  const child = spawn(NODE, [join(root, 'operator', 'main.ts')], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...process.env,
      KUBECONFIG: cp.kubeconfigPath,
      NAMESPACE: ns,
      METRICS_PORT: String(port),
      METRICS_HOST: '127.0.0.1',
      IDENTITY: identity,
      // Long enough to outlast an API server restart (a leader that cannot renew exits).
      LEASE_DURATION_SECONDS: '60',
      RENEW_DEADLINE_SECONDS: '45',
      RETRY_PERIOD_SECONDS: '1',
      BACKOFF_MAX_SECONDS: '5',
      ...env,
    },
  });
  running.add(child);
  let out = '';
  const keep = (d: Buffer) => {
    out += d.toString();
    if (out.length > 2_000_000) out = out.slice(-1_000_000);
    if (process.env.OPERATOR_TEST_LOG) process.stderr.write(d);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code, signal) => {
      running.delete(child);
      resolve(code ?? (signal ? -1 : null));
    }),
  );
  const get = async (path: string) => {
    const res = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(5000) });
    return { status: res.status, body: await res.text() };
  };
  const op: OperatorProcess = {
    child,
    identity,
    port,
    output: () => out,
    get,
    async metric(name, labels = {}) {
      const { body } = await get('/metrics');
      let total = 0;
      for (const line of body.split('\n')) {
        if (!line.startsWith(name)) continue;
        const m = /^([a-z_:]+)(\{([^}]*)\})? ([-+0-9.eE]+|NaN)$/.exec(line);
        if (!m || m[1] !== name) continue;
        const have = Object.fromEntries([...(m[3] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
        if (Object.entries(labels).every(([k, v]) => have[k] === v)) total += Number(m[4]);
      }
      return total;
    },
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
    exited,
  };
  if (waitReady) {
    await waitFor(
      `operator ${identity} /readyz`,
      async () => {
        if (child.exitCode !== null) throw new Error(`operator exited ${child.exitCode}: ${out.slice(-3000)}`);
        return (await get('/readyz')).status === 200;
      },
      60_000,
    );
  }
  return op;
}

export function timed<T>(fn: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const t0 = performance.now();
  return fn().then((value) => ({ value, ms: Math.round(performance.now() - t0) }));
}

/** A ServiceAccount in the namespace bound to a Role holding `rules` (as the manifests render them). */
export async function grantRole(cp: ControlPlane, name: string, rules: PolicyRule[]): Promise<string> {
  await kubectlApply(
    cp,
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name, namespace: ns } },
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name, namespace: ns }, rules },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name, namespace: ns },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name },
      subjects: [{ kind: 'ServiceAccount', name, namespace: ns }],
    },
  );
  return `system:serviceaccount:${ns}:${name}`;
}

/** A TCP proxy in front of the API server, to drop the operator's connections at will (TLS passes through). */
export interface TcpProxy {
  port: number;
  /** Open client connections. */
  connections(): number;
  /** Closes every open connection at once (what a network blip or a load balancer restart does). */
  dropAll(): void;
  /** Closes every connection and refuses new ones until resume(). */
  pause(): void;
  resume(): void;
  close(): Promise<void>;
}

export async function startTcpProxy(targetPort: number): Promise<TcpProxy> {
  const sockets = new Set<Socket>();
  let paused = false;
  const server = createNetServer((client) => {
    if (paused) {
      client.destroy();
      return;
    }
    const upstream = connect(targetPort, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {});
    }
    client.pipe(upstream).pipe(client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  // destroy(), not resetAndDestroy(): a reset of a socket with a write pending can leave its handle
  // closing for ever (and the test process spinning) on Node 24.
  const dropAll = () => {
    for (const s of sockets) s.destroy();
  };
  return {
    port: (server.address() as AddressInfo).port,
    connections: () => sockets.size / 2,
    dropAll,
    pause: () => {
      paused = true;
      dropAll();
    },
    resume: () => {
      paused = false;
    },
    close: () =>
      new Promise<void>((r) => {
        dropAll();
        server.close(() => r());
      }),
  };
}

/** A copy of a kubeconfig file whose server is https://127.0.0.1:<port> (the proxy). */
export async function kubeconfigVia(path: string, port: number, dir: string): Promise<string> {
  const config = JSON.parse(await readFile(path, 'utf8')) as { clusters: Array<{ cluster: { server: string } }> };
  for (const c of config.clusters) c.cluster.server = `https://127.0.0.1:${port}`;
  const out = join(dir, `via-${port}.kubeconfig`);
  await writeFile(out, JSON.stringify(config), { mode: 0o600 });
  return out;
}
