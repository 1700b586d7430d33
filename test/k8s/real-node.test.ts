import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { after, before, describe, test } from 'node:test';
import { httpGet } from '../helpers/http.ts';
import { startControlPlane, waitFor, type ControlPlane } from './control-plane.ts';
import { markedProcesses, mountsUnder, NODE_NETWORK, REAL_NODE_CGROUP_ROOT, startRealNode, type RealNode } from './real-node.ts';

// A real node next to the test control plane: kubelet, containerd 1.6 with runc, the CNI bridge,
// kube-proxy (iptables) and CoreDNS, running the project's own image built from its Dockerfile,
// unchanged, FROM a local equivalent of the official node:24-bookworm-slim image (infra/images/;
// no registry is reachable here). Traffic goes only to the node's bridge, its pods and loopback.
// A cold image build takes a few minutes (before's time-out); later runs only import the images.

const NS = 'default';
const IMAGE = 'analytics-api:latest';

/** Rules and user chains of both iptables families, without counters or comments. */
function iptablesState(): string[] {
  const out: string[] = [];
  for (const fam of ['iptables-save', 'ip6tables-save']) {
    const r = spawnSync(fam, [], { encoding: 'utf8' });
    if (r.status !== 0) continue;
    let table = '';
    for (const line of r.stdout.split('\n')) {
      if (line.startsWith('*')) table = line;
      else if (line.startsWith('-A ')) out.push(`${fam} ${table} ${line}`);
      else if (line.startsWith(':') && !/^:(PREROUTING|INPUT|FORWARD|OUTPUT|POSTROUTING) /.test(line)) out.push(`${fam} ${table} ${line.split(' ')[0]}`);
    }
  }
  return out.sort();
}

function sysctls(): Record<string, string> {
  const keys = ['net/ipv4/ip_forward', 'net/bridge/bridge-nf-call-iptables', 'net/bridge/bridge-nf-call-ip6tables'];
  return Object.fromEntries(keys.map((k) => [k, readFileSync(`/proc/sys/${k}`, 'utf8').trim()]));
}

/** What a real node may leave on the machine; all of it must be gone after a stop. */
function leftovers(dir: string): string[] {
  const found: string[] = [];
  const pids = markedProcesses(dir);
  if (pids.length) found.push(`processes ${pids.join(', ')}`);
  const mounts = mountsUnder(dir);
  if (mounts.length) found.push(`mounts ${mounts.slice(0, 5).join(', ')}`);
  if (existsSync(`/sys/class/net/${NODE_NETWORK.bridge}`)) found.push(`bridge ${NODE_NETWORK.bridge}`);
  if (existsSync(dir)) found.push(`folder ${dir}`);
  for (const h of readdirSync('/sys/fs/cgroup'))
    if (existsSync(`/sys/fs/cgroup/${h}/${REAL_NODE_CGROUP_ROOT}`)) found.push(`cgroup ${h}/${REAL_NODE_CGROUP_ROOT}`);
  if (existsSync('/var/log/containers')) {
    const links = readdirSync('/var/log/containers').filter((f) => {
      try {
        return readlinkSync(`/var/log/containers/${f}`).startsWith(dir);
      } catch {
        return false;
      }
    });
    if (links.length) found.push(`/var/log/containers: ${links.join(', ')}`);
  }
  if (existsSync('/var/lib/cni/results')) {
    const cached = readdirSync('/var/lib/cni/results').filter((f) => readFileSync(`/var/lib/cni/results/${f}`, 'utf8').includes(`${dir}/`));
    if (cached.length) found.push(`CNI cache entries ${cached.join(', ')}`);
  }
  if (existsSync('/var/lib/kubelet/device-plugins/kubelet.sock')) found.push('/var/lib/kubelet/device-plugins/kubelet.sock');
  return found;
}

function hardenedPod(name: string, labels: Record<string, string>, container: Record<string, unknown>, spec: Record<string, unknown> = {}) {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: NS, labels },
    spec: {
      automountServiceAccountToken: false,
      terminationGracePeriodSeconds: 2,
      securityContext: { runAsNonRoot: true, runAsUser: 1000, runAsGroup: 1000, fsGroup: 1000, seccompProfile: { type: 'RuntimeDefault' } },
      containers: [
        {
          name: 'main',
          image: IMAGE,
          imagePullPolicy: 'IfNotPresent', // as the manifests say; the image is on the node already
          resources: { requests: { cpu: '100m', memory: '128Mi' }, limits: { cpu: '1', memory: '1Gi' } },
          securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, runAsNonRoot: true, capabilities: { drop: ['ALL'] } },
          volumeMounts: [
            { name: 'tmp', mountPath: '/tmp' },
            { name: 'models', mountPath: '/app/models' },
          ],
          ...container,
        },
      ],
      volumes: [
        { name: 'tmp', emptyDir: {} },
        { name: 'models', emptyDir: {} },
      ],
      ...spec,
    },
  };
}

interface PodStatus {
  status?: {
    phase?: string;
    podIP?: string;
    conditions?: { type: string; status: string }[];
    containerStatuses?: { state?: Record<string, { reason?: string; message?: string }> }[];
  };
}

describe('a real node runs the project image, built FROM a local equivalent of the official node:24-bookworm-slim image', { timeout: 60 * 60_000 }, () => {
  let cp: ControlPlane;
  let node: RealNode;
  let iptablesBefore: string[];
  let sysctlsBefore: Record<string, string>;

  const kubectl = async (args: string[], input?: string) => {
    const r = await cp.kubectl(args, { ...(input !== undefined ? { input } : {}), timeoutMs: 60_000 });
    assert.equal(r.code, 0, `kubectl ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  const apply = (o: unknown) => kubectl(['apply', '-f', '-'], JSON.stringify(o));
  const pod = async (name: string) => JSON.parse(await kubectl(['get', 'pod', name, '-n', NS, '-o', 'json'])) as PodStatus;
  const waitPod = (name: string, what: 'Ready' | 'Succeeded', timeoutMs = 120_000) =>
    waitFor(
      `pod ${name} ${what}`,
      async () => {
        const p = await pod(name);
        const waiting = p.status?.containerStatuses?.[0]?.state?.waiting;
        if (waiting?.reason && /ErrImage|ImagePull|CrashLoop|CreateContainer/.test(waiting.reason)) throw new Error(`${waiting.reason}: ${waiting.message}`);
        if (what === 'Succeeded') return p.status?.phase === 'Succeeded' ? p : false;
        return p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ? p : false;
      },
      timeoutMs,
    );
  const exec = (podName: string, cmd: string[]) => kubectl(['exec', podName, '-n', NS, '--', ...cmd]);

  before(
    async () => {
      iptablesBefore = iptablesState();
      sysctlsBefore = sysctls();
      cp = await startControlPlane({ controllers: true, kwok: false });
      // A cold machine builds the images first (mmdebstrap, npm ci in the Dockerfile): minutes.
      node = await startRealNode(cp, { imagesTimeoutMs: 40 * 60_000 });
      process.stderr.write(`[real-node.test] node ready in ${node.startupMs} ms: ${JSON.stringify(node.timings)}\n`);
    },
    { timeout: 45 * 60_000 },
  );

  after(
    async () => {
      await node?.stop();
      await cp?.stop();
    },
    { timeout: 180_000 },
  );

  test('the Node is Ready at the bridge address, on containerd, with the local images loaded', { timeout: 60_000 }, async () => {
    const n = JSON.parse(await kubectl(['get', 'node', node.name, '-o', 'json'])) as {
      status: { addresses: { type: string; address: string }[]; nodeInfo: { containerRuntimeVersion: string; kubeletVersion: string; osImage: string } };
    };
    assert.deepEqual(n.status.addresses.find((a) => a.type === 'InternalIP')?.address, NODE_NETWORK.nodeIP);
    assert.match(n.status.nodeInfo.containerRuntimeVersion, /^containerd:\/\/1\.6\./);
    assert.equal(n.status.nodeInfo.kubeletVersion, 'v1.34.4');
    assert.equal(cp.nodeName, node.name);
    const images = await node.ctr(['images', 'ls', '-q']);
    assert.equal(images.code, 0, images.stderr);
    for (const ref of [IMAGE, 'redis:7-alpine', 'pause:3.10.1'])
      assert.ok(
        images.stdout.split('\n').some((l) => l.endsWith(`/${ref}`)),
        `containerd has ${ref}: ${images.stdout}`,
      );
  });

  let podIP = '';

  test('a hardened pod (uid 1000, read-only root, no capabilities, RuntimeDefault seccomp) of the project image serves /health on its pod IP', {
    timeout: 180_000,
  }, async () => {
    await apply(
      hardenedPod(
        'api',
        { app: 'api-test' },
        {
          env: [{ name: 'SAMPLE_MODELS_DIR', value: '/app/sample-models' }],
          ports: [{ name: 'http', containerPort: 8080 }],
          readinessProbe: { httpGet: { path: '/ready', port: 8080 }, periodSeconds: 1 },
        },
      ),
    );
    const p = await waitPod('api', 'Ready');
    podIP = p.status?.podIP ?? '';
    assert.match(podIP, /^172\.31\.254\.\d+$/);
    const health = await httpGet(`http://${podIP}:8080/health`, 5000);
    assert.equal(health.status, 200, health.body);
    assert.match(health.body, /iris-logreg/);
  });

  test('kubectl exec, logs and port-forward reach the kubelet; the process is uid 1000 without capabilities on a read-only root', {
    timeout: 60_000,
  }, async () => {
    const ids = await exec('api', ['sh', '-c', 'id -u; id -g; grep ^CapEff /proc/1/status; touch /app/x 2>&1 || echo read-only']);
    assert.match(ids, /^1000\n1000\nCapEff:\s+0000000000000000\n.*read-only/s);
    const seccomp = await exec('api', ['grep', '^Seccomp:', '/proc/1/status']);
    assert.match(seccomp, /Seccomp:\s+2/); // 2 = filter mode (RuntimeDefault)
    const logs = await kubectl(['logs', 'api', '-n', NS]);
    assert.match(logs, /"msg":/); // pino's JSON lines
    const pf = spawn(`${cp.binDir}/kubectl`, ['--kubeconfig', cp.kubeconfigPath, 'port-forward', '-n', NS, '--address', '127.0.0.1', 'pod/api', ':8080'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    try {
      const line = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('kubectl port-forward printed no address in 20 s')), 20_000);
        createInterface({ input: pf.stdout! }).on('line', (l) => {
          if (l.startsWith('Forwarding from 127.0.0.1:')) {
            clearTimeout(timer);
            resolve(l);
          }
        });
        pf.on('exit', (code) => reject(new Error(`kubectl port-forward exited ${code}`)));
      });
      const port = /127\.0\.0\.1:(\d+)/.exec(line)?.[1];
      assert.equal((await httpGet(`http://127.0.0.1:${port}/health`, 5000)).status, 200);
    } finally {
      pf.kill('SIGKILL');
    }
  });

  test('a one-shot pod runs the image entrypoint with `analytics-api --help` and Succeeds', { timeout: 120_000 }, async () => {
    await apply(hardenedPod('cli', { app: 'cli-test' }, { args: ['analytics-api', '--help'] }, { restartPolicy: 'Never' }));
    await waitPod('cli', 'Succeeded');
    assert.match(await kubectl(['logs', 'cli', '-n', NS]), /usage: analytics-api <command>/);
  });

  let clusterIP = '';

  test('a ClusterIP Service routes to the pod through kube-proxy, from the node and from another pod', { timeout: 120_000 }, async () => {
    await apply({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'api-test', namespace: NS },
      spec: { selector: { app: 'api-test' }, ports: [{ name: 'http', port: 80, targetPort: 8080 }] },
    });
    clusterIP = (await kubectl(['get', 'service', 'api-test', '-n', NS, '-o', 'jsonpath={.spec.clusterIP}'])).trim();
    assert.match(clusterIP, /^10\.0\.0\.\d+$/);
    await waitFor('the Service answering from the node', async () => (await httpGet(`http://${clusterIP}/health`, 2000)).status === 200, 60_000);
    await apply(
      hardenedPod('client', { app: 'client-test' }, { command: ['node', '-e', 'setInterval(() => {}, 1 << 30)'] }, { automountServiceAccountToken: true }),
    );
    await waitFor('pod client running', async () => (await pod('client')).status?.phase === 'Running', 120_000);
    const body = await exec('client', ['node', '-e', `fetch('http://${clusterIP}/health').then(async (r) => console.log(r.status, await r.text()))`]);
    assert.match(body, /^200 .*iris-logreg/s);
  });

  test('cluster DNS: a pod resolves kubernetes.default.svc.cluster.local and the Service, and reaches the API server in-cluster', {
    timeout: 120_000,
  }, async () => {
    const script = `
      const dns = require('node:dns').promises;
      (async () => {
        const k = await dns.lookup('kubernetes.default.svc.cluster.local');
        const s = await dns.lookup('api-test');   // the search path: api-test.default.svc.cluster.local
        const outside = await dns.lookup('example.invalid').then(() => 'resolved', (e) => e.code);
        const r = await fetch('http://api-test.default.svc.cluster.local/health');
        console.log(JSON.stringify({ k: k.address, s: s.address, outside, health: r.status }));
      })().catch((e) => { console.error(e); process.exit(1); });`;
    const out = JSON.parse(await exec('client', ['node', '-e', script])) as { k: string; s: string; outside: string; health: number };
    assert.equal(out.k, '10.0.0.1');
    assert.equal(out.s, clusterIP);
    assert.notEqual(out.outside, 'resolved'); // nothing outside the cluster is looked up
    assert.equal(out.health, 200);
    const resolv = await exec('client', ['cat', '/etc/resolv.conf']);
    assert.match(resolv, new RegExp(`nameserver ${NODE_NETWORK.dnsServiceIP.replace(/\./g, '\\.')}`));
    // In-cluster clients (the operator) reach the API server through the kubernetes Service.
    const api = await exec('client', [
      'node',
      '-e',
      `const fs = require('node:fs'); const https = require('node:https');
       const d = '/var/run/secrets/kubernetes.io/serviceaccount/';
       https.get('https://kubernetes.default.svc/api/v1/namespaces/' + fs.readFileSync(d + 'namespace', 'utf8') + '/pods',
         { ca: fs.readFileSync(d + 'ca.crt'), headers: { authorization: 'Bearer ' + fs.readFileSync(d + 'token', 'utf8') } },
         (r) => { console.log(r.statusCode); r.resume(); }).on('error', (e) => { console.error(e); process.exit(1); });`,
    ]);
    assert.equal(api.trim(), '403'); // authenticated as system:serviceaccount:default:default, which may not list pods
  });

  test('stop() leaves no process, mount, cgroup, bridge, iptables rule, sysctl change or temp folder behind', { timeout: 180_000 }, async () => {
    const dir = node.dir;
    assert.ok(markedProcesses(dir).length >= 5, 'the node runs containerd, shims, kubelet, kube-proxy, CoreDNS, ...');
    assert.ok(mountsUnder(dir).length > 0, 'the pods have mounts under the node folder');
    await node.stop();
    assert.deepEqual(leftovers(dir), []);
    assert.deepEqual(iptablesState(), iptablesBefore);
    assert.deepEqual(sysctls(), sysctlsBefore);
    assert.equal(cp.nodeName, undefined);
  });
});

describe('a test process SIGKILLed with a real node up leaves nothing behind (the control plane watchdog runs the node clean-up)', {
  timeout: 15 * 60_000,
}, () => {
  test('SIGKILL: processes, mounts, cgroups, bridge, iptables rules and the folder are gone', { timeout: 10 * 60_000 }, async () => {
    const iptablesBefore = iptablesState();
    const sysctlsBefore = sysctls();
    const script = `
      import { startControlPlane } from ${JSON.stringify(new URL('./control-plane.ts', import.meta.url).href)};
      import { startRealNode } from ${JSON.stringify(new URL('./real-node.ts', import.meta.url).href)};
      const cp = await startControlPlane({ controllers: true, kwok: false });
      const node = await startRealNode(cp);
      const r = await cp.kubectl(['run', 'sleeper', '--image=${IMAGE}', '--image-pull-policy=IfNotPresent', '--restart=Never', '--command', '--', 'node', '-e', 'setInterval(() => {}, 1e9)']);
      if (r.code !== 0) throw new Error(r.stderr);
      for (let i = 0; i < 120; i++) {
        const p = await cp.kubectl(['get', 'pod', 'sleeper', '-o', 'jsonpath={.status.phase}']);
        if (p.stdout === 'Running') break;
        await new Promise((res) => setTimeout(res, 500));
      }
      console.log(JSON.stringify({ cpDir: cp.dir, dir: node.dir }));
      setInterval(() => {}, 1000);
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.on('exit', (code, signal) => r({ code, signal })));
    const lines = createInterface({ input: child.stdout! });
    const first = await Promise.race([
      new Promise<string>((r) => lines.once('line', r)),
      exited.then((e) => {
        throw new Error(`child exited before the node was up: ${JSON.stringify(e)}`);
      }),
    ]);
    const { cpDir, dir } = JSON.parse(first) as { cpDir: string; dir: string };
    assert.ok(markedProcesses(dir).length >= 5);
    assert.ok(mountsUnder(dir).length > 0);
    child.kill('SIGKILL');
    assert.equal((await exited).signal, 'SIGKILL');
    await waitFor('the watchdog cleaning up after the SIGKILL', async () => leftovers(dir).length === 0 && !existsSync(cpDir), 120_000).catch((err: Error) => {
      throw new Error(`${err.message}; left: ${leftovers(dir).join('; ')}`);
    });
    assert.deepEqual(iptablesState(), iptablesBefore);
    assert.deepEqual(sysctls(), sysctlsBefore);
  });
});
