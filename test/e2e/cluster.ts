import assert from 'node:assert/strict';
import { Agent, request as httpRequest } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { KubeConfig } from '@kubernetes/client-node';
import { LABELS, LEADER_LEASE, NAMESPACE, SERVICE_NAME } from '../../contract/names.ts';
import { KIND_POD_CIDR, TOKEN_KEY, TOKEN_SECRET } from '../../infra/names.ts';
import { runCommand } from '../helpers/processes.ts';
import { startControlPlane, waitFor, type ControlPlane } from '../k8s/control-plane.ts';
import { NODE_NETWORK, startRealNode, type RealNode } from '../k8s/real-node.ts';
import { prepareDeploy } from '../k8s/real-node-deploy.ts';

// The whole platform on a real node, deployed as a user deploys it: `make synth` with settings
// (infra/settings.ts, through SETTINGS_FILE and OUT) into a temporary DIST folder, then
// infra/scripts/deploy.sh with DIST, KUBECONFIG and KUBE_CONTEXT, as `make deploy` runs it. The
// pods run with the manifests' own security contexts, probes and volumes. What differs from the
// defaults is test/k8s/real-node-deploy.ts's (small requests, the volumes' folders, a volume for
// redis-data, as `make cluster-local NODE=real` prepares them), and one more: TRUSTED_PROXIES also
// names the node's bridge address, since the harness's Traefik (test/k8s/ingress.ts) is a host
// process and reaches the pods from there (kind's Traefik is a pod in kind's pod CIDR, the default).
// Everything stays on this machine: loopback, the node's bridge, pod and Service addresses.

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const ns = NAMESPACE;

export interface Pod {
  name: string;
  uid: string;
  ip: string;
  ready: boolean;
  restarts: number;
  deleting: boolean;
}

export interface HttpAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  // biome-ignore lint/suspicious/noExplicitAny: a JSON answer, read field by field by the tests
  json: any;
}

export interface E2eCluster {
  cp: ControlPlane;
  node: RealNode;
  kc: KubeConfig;
  /** The synthesized manifests deploy.sh applied. */
  dist: string;
  /** The node's folders behind the PersistentVolumes (the host sees what the pods wrote). */
  dirs: { models: string; backups: string; redis: string };
  /** The analytics-api Service's ClusterIP (kube-proxy routes it from this host too). */
  serviceIP: string;
  /** Milliseconds of each start-up phase. */
  timings: Record<string, number>;
  /** kubectl in the namespace; fails the test on a non-zero exit. */
  kubectl(args: string[], opts?: { input?: string; timeoutMs?: number }): Promise<string>;
  /** The API token deploy.sh put into the analytics-api-token Secret. */
  token(): Promise<string>;
  /** An HTTP request to the Service (ClusterIP, port 80). */
  request(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<HttpAnswer>;
  /** POST /api/v1/predict/<model> through the Service. */
  predict(model: string, features: Record<string, number>): Promise<HttpAnswer>;
  /** The pods of a workload (app.kubernetes.io/name), not counting ones already gone. */
  pods(name?: string): Promise<Pod[]>;
  /** GET /health of one service pod at its pod IP. */
  podHealth(pod: Pod): Promise<HttpAnswer>;
  stop(): Promise<void>;
}

/** One HTTP request (no keep-alive unless an agent is given); the body parsed as JSON when it is JSON. */
export function http(
  url: string,
  opts: { method?: string; body?: string; headers?: Record<string, string>; agent?: Agent; timeoutMs?: number } = {},
): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      url,
      { method: opts.method ?? 'GET', headers: opts.headers, agent: opts.agent ?? false, timeout: opts.timeoutMs ?? 10_000 },
      (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (d: string) => (body += d));
        res.on('end', () => {
          let json: unknown;
          try {
            json = JSON.parse(body);
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body, json });
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer from ${url} within ${opts.timeoutMs ?? 10_000} ms`)));
    req.on('error', reject);
    req.end(opts.body);
  });
}

export async function startE2eCluster(): Promise<E2eCluster> {
  const timings: Record<string, number> = {};
  const t0 = performance.now();
  const phase = async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
    const t = performance.now();
    const r = await fn();
    timings[name] = Math.round(performance.now() - t);
    return r;
  };
  const cp = await phase('control plane', () => startControlPlane({ controllers: true, kwok: false, log: process.env.K8S_TEST_LOG === '1' }));
  let node: RealNode | undefined;
  try {
    // A cold machine builds the images first (minutes); another engineer's node may hold the lock.
    node = await phase('real node', () => startRealNode(cp, { imagesTimeoutMs: 40 * 60_000, lockTimeoutMs: 20 * 60_000 }));
    const n = node;
    // The harness's Traefik runs on the host and reaches the pods from the node's bridge address.
    const { dist, dirs } = await phase('synth', () =>
      prepareDeploy(cp, n, join(cp.dir, 'dist'), { trustedProxies: `${KIND_POD_CIDR},${NODE_NETWORK.nodeIP}` }),
    );

    const raw = (args: string[], opts: { input?: string; timeoutMs?: number } = {}) => cp.kubectl(['-n', ns, ...args], { timeoutMs: 60_000, ...opts });
    const kubectl = async (args: string[], opts: { input?: string; timeoutMs?: number } = {}) => {
      const r = await raw(args, opts);
      assert.equal(r.code, 0, `kubectl ${args.join(' ')}: ${r.stderr}`);
      return r.stdout;
    };

    // make deploy, against this cluster.
    const deployed = await phase('deploy', () =>
      runCommand(join(root, 'infra', 'scripts', 'deploy.sh'), [], {
        cwd: root,
        env: {
          ...process.env,
          PATH: `${cp.binDir}:${process.env.PATH}`,
          KUBECONFIG: cp.kubeconfigPath,
          KUBE_CONTEXT: 'test',
          DIST: dist,
          ROLLOUT_TIMEOUT: '240s',
        },
        timeoutMs: 15 * 60_000,
      }),
    );
    if (deployed.code !== 0) {
      const state = await raw(['get', 'pods,pvc,events', '-o', 'wide']);
      assert.fail(`infra/scripts/deploy.sh failed (exit ${deployed.code}):\n${deployed.stderr}\n${deployed.stdout}\n${state.stdout}`);
    }
    timings['to Ready'] = Math.round(performance.now() - t0);

    const serviceIP = (await kubectl(['get', 'service', SERVICE_NAME, '-o', 'jsonpath={.spec.clusterIP}'])).trim();
    assert.match(serviceIP, /^10\.0\.0\.\d+$/);
    const base = `http://${serviceIP}`;

    const cluster: E2eCluster = {
      cp,
      node: n,
      kc: cp.kubeConfig(),
      dist,
      dirs,
      serviceIP,
      timings,
      kubectl,
      async token() {
        const b64 = await kubectl(['get', 'secret', TOKEN_SECRET, '-o', `jsonpath={.data.${TOKEN_KEY}}`]);
        return Buffer.from(b64.trim(), 'base64').toString('utf8');
      },
      request(method, path, body, headers = {}) {
        return http(`${base}${path}`, {
          method,
          ...(body !== undefined ? { body: JSON.stringify(body), headers: { 'content-type': 'application/json', ...headers } } : { headers }),
        });
      },
      predict(model, features) {
        return cluster.request('POST', `/api/v1/predict/${model}`, { features });
      },
      async pods(name = SERVICE_NAME) {
        const list = JSON.parse(await kubectl(['get', 'pods', '-l', `${LABELS.name}=${name}`, '-o', 'json'])) as {
          items: Array<{
            metadata: { name: string; uid: string; deletionTimestamp?: string };
            status?: { podIP?: string; conditions?: { type: string; status: string }[]; containerStatuses?: { restartCount: number }[] };
          }>;
        };
        return list.items.map((p) => ({
          name: p.metadata.name,
          uid: p.metadata.uid,
          ip: p.status?.podIP ?? '',
          ready: p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false,
          restarts: (p.status?.containerStatuses ?? []).reduce((sum, c) => sum + c.restartCount, 0),
          deleting: !!p.metadata.deletionTimestamp,
        }));
      },
      podHealth(pod) {
        return http(`http://${pod.ip}:8080/health`, { timeoutMs: 3000 });
      },
      async stop() {
        await n.stop();
        await cp.stop();
      },
    };
    return cluster;
  } catch (err) {
    await node?.stop();
    await cp.stop();
    throw err;
  }
}

/** The host pid of a pod's first container's process (its containerd task). */
export async function containerPid(c: E2eCluster, pod: string): Promise<number> {
  const id = (await c.kubectl(['get', 'pod', pod, '-o', 'jsonpath={.status.containerStatuses[0].containerID}'])).trim().replace(/^containerd:\/\//, '');
  assert.ok(id, `pod ${pod} has a running container`);
  const tasks = await c.node.ctr(['tasks', 'ls']);
  assert.equal(tasks.code, 0, tasks.stderr);
  const line = tasks.stdout.split('\n').find((l) => l.startsWith(`${id} `));
  const pid = Number(line?.trim().split(/\s+/)[1]);
  assert.ok(pid > 1, `containerd's task for ${pod} (${id}): ${tasks.stdout}`);
  return pid;
}

/** The operator replica holding the Lease (its pod name), or undefined. */
export async function leader(c: E2eCluster): Promise<string | undefined> {
  const r = await c.cp.kubectl(['-n', ns, 'get', 'lease', LEADER_LEASE, '-o', 'jsonpath={.spec.holderIdentity}']);
  return r.code === 0 && r.stdout.trim() ? r.stdout.trim() : undefined;
}

export interface LoadReport {
  requests: number;
  /** It stopped at maxRequests before stop() was called (the load did not last the whole event). */
  exhausted: boolean;
  failures: number;
  /** The first few failures, for the assertion message. */
  failureSamples: string[];
  /** How many answers each version gave. */
  versions: Record<string, number>;
  ms: number;
}

/**
 * `clients` concurrent clients, each a keep-alive connection sending predictions of `model` one
 * after another (at most one per `intervalMs`) through the Service until stop() (or `maxRequests`
 * in all); every answer that is not a 200 with a prediction, and every connection error, is a failure.
 */
export function startLoad(
  c: E2eCluster,
  model: string,
  rows: Record<string, number>[],
  opts: { clients?: number; maxRequests?: number; intervalMs?: number } = {},
) {
  const clients = opts.clients ?? 4;
  const maxRequests = opts.maxRequests ?? 60_000;
  const intervalMs = opts.intervalMs ?? 5;
  const report: LoadReport = { requests: 0, exhausted: false, failures: 0, failureSamples: [], versions: {}, ms: 0 };
  const t0 = performance.now();
  let stopping = false;
  const agents: Agent[] = [];
  const client = async (id: number) => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    agents.push(agent);
    for (let i = id; !stopping && report.requests < maxRequests; i += clients) {
      const started = performance.now();
      report.requests++;
      const row = rows[i % rows.length]!;
      try {
        const r = await http(`http://${c.serviceIP}/api/v1/predict/${model}`, {
          method: 'POST',
          body: JSON.stringify({ features: row }),
          headers: { 'content-type': 'application/json' },
          agent,
          timeoutMs: 10_000,
        });
        if (r.status !== 200 || typeof r.json?.prediction !== 'number') throw new Error(`HTTP ${r.status}: ${r.body.slice(0, 200)}`);
        const v = String(r.json.model_version);
        report.versions[v] = (report.versions[v] ?? 0) + 1;
      } catch (err) {
        report.failures++;
        if (report.failureSamples.length < 5) report.failureSamples.push(`${Math.round(performance.now() - t0)} ms: ${(err as Error).message}`);
      }
      // Paced: a client sends at most one request per interval (keep-alive connections stay busy,
      // and the two CPUs stay for the pods).
      const wait = started + intervalMs - performance.now();
      if (wait > 0) await sleep(wait);
    }
  };
  const running = Promise.all(Array.from({ length: clients }, (_, id) => client(id)));
  return {
    report,
    async stop(): Promise<LoadReport> {
      report.exhausted = report.requests >= maxRequests;
      stopping = true;
      await running;
      for (const a of agents) a.destroy();
      report.ms = Math.round(performance.now() - t0);
      return report;
    },
  };
}

/** Waits until every ready service pod answers /health with `model` at `version` loaded; resolves to the ms it took per pod. */
export async function waitAllPodsServe(c: E2eCluster, model: string, version: string, timeoutMs = 60_000): Promise<Record<string, number>> {
  const t0 = performance.now();
  const seen: Record<string, number> = {};
  await waitFor(
    `every service pod serving ${model}@${version}`,
    async () => {
      const pods = (await c.pods()).filter((p) => p.ready && !p.deleting);
      if (pods.length === 0) return false;
      for (const p of pods) {
        if (seen[p.name] !== undefined) continue;
        const h = await c.podHealth(p);
        const m = (h.json?.models as { name: string; version: string; loaded: boolean }[] | undefined)?.find((x) => x.name === model);
        if (m?.version === version && m.loaded) seen[p.name] = Math.round(performance.now() - t0);
      }
      return pods.every((p) => seen[p.name] !== undefined);
    },
    timeoutMs,
  );
  return seen;
}
