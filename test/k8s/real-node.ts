// A real Kubernetes node next to the test control plane (control-plane.ts): containerd (with runc
// and the CNI bridge plugin) runs the pods, kubelet registers the node, kube-proxy programs the
// Services into iptables, CoreDNS answers cluster DNS, and the images are the project's own,
// built from its Dockerfile on local equivalents of the official base images (infra/images/).
// Nothing is pulled from a registry; all traffic stays on this machine (loopback, the node's own
// bridge and the pods on it).
//
//   const cp = await startControlPlane({ controllers: true, kwok: false });
//   const node = await startRealNode(cp);     // Ready, DNS answering, images loaded
//   ...
//   await node.stop();                        // or cp.stop(), which runs the node's clean-up first
//
// Every process it starts carries K8S_REAL_NODE=<its folder> in its environment; the generated
// clean-up script (<folder>/cleanup.sh, also hooked into the control plane's stop, exit handler
// and SIGKILL watchdog) finds them by that mark, kills the pods' processes by their cgroups, and
// removes mounts, the bridge, the iptables chains, cgroups and the folder.
import { spawn, spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { Resolver } from 'node:dns/promises';
import { appendFileSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { httpGet } from '../helpers/http.ts';
import { spawnLogged, tail, type Proc } from '../helpers/processes.ts';
import { freePorts, type ControlPlane, type ExecResult } from './control-plane.ts';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');

/** The node's network. One real node runs per machine at a time (a lock serialises them). */
export const NODE_NETWORK = {
  /** The Linux bridge the pods' veths join; the harness creates and deletes it. */
  bridge: 'knode0',
  /** The pods' addresses (CNI host-local), separate from the Services' 10.0.0.0/24. */
  podCIDR: '172.31.254.0/24',
  /** The bridge's own address: the node's InternalIP, the pods' gateway, where CoreDNS listens. */
  nodeIP: '172.31.254.1',
  /** The API server's --service-cluster-ip-range (control-plane.ts). */
  serviceCIDR: '10.0.0.0/24',
  /** The kube-dns Service (as kubeadm names it), routed by kube-proxy to CoreDNS on nodeIP:53. */
  dnsServiceIP: '10.0.0.10',
  clusterDomain: 'cluster.local',
} as const;

const LOCK_FILE = '/run/k8s-test-real-node.lock';
const CGROUP_ROOT = 'k8s-test-real-node';
const BRIDGE_ALIAS_PREFIX = 'k8s-test-real-node ';
const MARK = 'K8S_REAL_NODE';

export interface RealNodeOptions {
  /** The Node's name (default real-node-0). */
  name?: string;
  /** Stream the components' logs to stderr (default: K8S_TEST_LOG=1). Always written to <dir>/<component>.log. */
  log?: boolean;
  /** Start-up deadline once the images are loaded (default 180 s). */
  timeoutMs?: number;
  /** Deadline of infra/images/build.sh --load (default 30 min: a cold build takes about 4 minutes). */
  imagesTimeoutMs?: number;
  /** How long to wait for another real node on this machine to stop (default 10 min). */
  lockTimeoutMs?: number;
}

export interface RealNode {
  /** The Node's name (also set as cp.nodeName). */
  name: string;
  /** The node's InternalIP: the bridge's address. */
  ip: string;
  podCIDR: string;
  /** Cluster DNS (the kube-dns Service). */
  dnsIP: string;
  /** Folder with containerd's and kubelet's state, configs and logs (inside the control plane's). */
  dir: string;
  /** containerd's socket (for ctr: `node.ctr(['images', 'ls'])`). */
  containerdSocket: string;
  /** The images loaded into containerd, as the manifests name them (pause, analytics-api, redis). */
  images: string[];
  /** Milliseconds from the call to startRealNode until the node was Ready and DNS answered. */
  startupMs: number;
  /** Milliseconds each start-up phase took. */
  timings: Record<string, number>;
  /** Runs ctr against this node's containerd, namespace k8s.io (kubelet's). */
  ctr(args: string[], opts?: { timeoutMs?: number }): Promise<ExecResult>;
  /** Kills everything the node started and removes what it made. Idempotent. */
  stop(): Promise<void>;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function run(cmd: string, args: string[], what = `${cmd} ${args.join(' ')}`): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 60_000 });
  if (r.error) throw new Error(`${what}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${what} failed (exit ${r.status}): ${r.stderr.trim()}`);
  return r.stdout;
}

/**
 * Runs a command to its end (SIGKILL after `timeoutMs`) with no standard input, so a command that
 * exits at once can never fail the caller with an EPIPE on its stdin.
 */
function exec(cmd: string, args: string[], opts: { timeoutMs: number; env?: NodeJS.ProcessEnv }): Promise<ExecResult> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: opts.env ?? process.env });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      resolve({ code: -1, stdout, stderr: `${stderr}\n${cmd}: ${err.message}` });
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr: signal ? `${stderr}\n(${cmd} killed by ${signal})` : stderr });
    });
  });
}

const sq = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

class RealNodeImpl implements RealNode {
  name: string;
  ip: string = NODE_NETWORK.nodeIP;
  podCIDR: string = NODE_NETWORK.podCIDR;
  dnsIP: string = NODE_NETWORK.dnsServiceIP;
  dir: string;
  containerdSocket: string;
  images: string[] = [];
  startupMs = 0;
  timings: Record<string, number> = {};

  private cp: ControlPlane;
  private opts: RealNodeOptions;
  private log: boolean;
  private procs = new Map<string, Proc>();
  private hookPath: string;
  private stopping?: Promise<void>;
  private netName: string;
  private nodeBin: string;

  constructor(cp: ControlPlane, opts: RealNodeOptions) {
    this.cp = cp;
    this.opts = opts;
    this.name = opts.name ?? 'real-node-0';
    this.log = opts.log ?? process.env.K8S_TEST_LOG === '1';
    this.dir = join(cp.dir, `node-${this.name}`);
    this.containerdSocket = join(this.dir, 'containerd', 'containerd.sock');
    this.hookPath = join(cp.dir, 'cleanup.d', `50-node-${this.name}.sh`);
    this.netName = `k8s-test-${this.name}`;
    this.nodeBin = cp.binDir;
  }

  private path(...p: string[]): string {
    return join(this.dir, ...p);
  }

  private say(msg: string): void {
    if (this.log) process.stderr.write(`[real-node] ${msg}\n`);
  }

  private async phase<T>(name: string, fn: () => Promise<T> | T): Promise<T> {
    const t0 = performance.now();
    const r = await fn();
    this.timings[name] = Math.round(performance.now() - t0);
    this.say(`${name}: ${this.timings[name]} ms`);
    return r;
  }

  private env(): NodeJS.ProcessEnv {
    // kubelet and containerd run mount, iptables and runc from the sbin folders.
    return { ...process.env, HOME: this.dir, [MARK]: this.dir, PATH: `${process.env.PATH ?? '/usr/bin:/bin'}:/usr/local/sbin:/usr/sbin:/sbin` };
  }

  private spawnProc(name: string, cmd: string, args: string[], stdio: 'log' | 'pipe' = 'log'): Proc {
    const proc = spawnLogged(name, cmd, args, {
      cwd: this.dir,
      env: this.env(),
      logPath: this.path(`${name}.log`),
      pipe: this.log || stdio === 'pipe',
      echo: this.log,
    });
    this.procs.set(name, proc);
    return proc;
  }

  /** Polls `check`; fails fast when one of `procs` exits, or at the deadline, with its log. */
  private async waitReady(what: string, check: () => Promise<boolean>, timeoutMs: number, ...procs: Proc[]): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let lastErr = '';
    for (let delay = 100; ; delay = Math.min(delay * 2, 1000)) {
      const dead = procs.find((p) => p.exitCode !== undefined);
      if (dead) throw new Error(`${dead.name} exited (code ${dead.exitCode}) while waiting for ${what}; last log lines:\n${tail(dead.logPath)}`);
      try {
        if (await check()) return;
      } catch (err) {
        lastErr = (err as Error).message;
      }
      if (Date.now() > deadline) {
        const logs = procs.map((p) => `\nlast ${p.name} log lines:\n${tail(p.logPath)}`).join('');
        throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastErr ? ` (last error: ${lastErr})` : ''}${logs}`);
      }
      await sleep(delay);
    }
  }

  ctr(args: string[], opts: { timeoutMs?: number } = {}): Promise<ExecResult> {
    return exec('ctr', ['--address', this.containerdSocket, '--namespace', 'k8s.io', ...args], {
      env: this.env(),
      timeoutMs: opts.timeoutMs ?? 60_000,
    });
  }

  private async kubectlApply(objects: unknown[], what: string): Promise<void> {
    const input = objects.map((o) => JSON.stringify(o)).join('\n');
    const r = await this.cp.kubectl(['apply', '--server-side', '--field-manager=real-node', '--force-conflicts', '-f', '-'], { input });
    if (r.code !== 0) throw new Error(`kubectl apply (${what}) failed: ${r.stderr}`);
  }

  // -------------------------------------------------------------------------------------------

  async start(): Promise<void> {
    const t0 = performance.now();
    const timeoutMs = this.opts.timeoutMs ?? 180_000;
    if (process.getuid?.() !== 0) throw new Error('a real node needs root (network, mounts, cgroups)');
    for (const bin of ['kubelet', 'kube-proxy', 'coredns']) {
      if (!existsSync(join(this.nodeBin, bin))) {
        throw new Error(`${bin} is missing in ${this.nodeBin}: run test/k8s/build-bins.sh (it builds kubelet, kube-proxy and coredns too)`);
      }
    }
    await this.phase('packages', async () => {
      const r = await exec(join(here, 'node', 'system-packages.sh'), [], { timeoutMs: 900_000 });
      if (r.code !== 0) throw new Error(`test/k8s/node/system-packages.sh failed: ${r.stderr}`);
    });
    // The clean-up script, hooked into the control plane's stop before anything exists. Until the
    // lock is ours it only stops our own processes (the machine-wide parts may be another node's).
    mkdirSync(this.dir, { recursive: true });
    mkdirSync(dirname(this.hookPath), { recursive: true });
    writeFileSync(this.path('cleanup.sh'), this.cleanupScript(), { mode: 0o755 });
    writeFileSync(this.hookPath, `exec sh ${sq(this.path('cleanup.sh'))}\n`, { mode: 0o755 });
    await this.phase('lock', () => this.lock());
    writeFileSync(this.path('locked'), '');
    await this.phase('network', () => {
      this.setUpNetwork();
      this.setUpCgroups();
    });
    const [kubeletPort, kubeletHealthz, proxyHealthz, proxyMetrics, dnsHealth, dnsReady] = await freePorts(6);
    await this.phase('configs', () => this.writeConfigs({ kubeletPort, kubeletHealthz, proxyHealthz, proxyMetrics, dnsHealth, dnsReady }));
    const containerd = await this.phase('containerd', () => this.startContainerd(timeoutMs));

    // The images load while the API objects, the API proxy, kubelet and CoreDNS start.
    const images = this.phase('images', () => this.loadImages());
    const cluster = this.phase('cluster objects', () => this.applyClusterObjects());
    images.catch(() => {});
    cluster.catch(() => {});
    await cluster;
    const socat = this.spawnProc('api-proxy', 'socat', [
      `TCP-LISTEN:${new URL(this.cp.server).port},bind=${NODE_NETWORK.nodeIP},fork,reuseaddr`,
      `TCP:127.0.0.1:${new URL(this.cp.server).port}`,
    ]);
    const kubelet = this.spawnProc('kubelet', join(this.nodeBin, 'kubelet'), [
      `--config=${this.path('kubelet-config.json')}`,
      `--kubeconfig=${this.path('kubelet.kubeconfig')}`,
      `--root-dir=${this.path('kubelet')}`,
      `--cert-dir=${this.path('kubelet', 'pki')}`,
      `--hostname-override=${this.name}`,
      `--node-ip=${NODE_NETWORK.nodeIP}`,
      '--v=1',
    ]);
    const coredns = this.spawnProc('coredns', join(this.nodeBin, 'coredns'), ['-conf', this.path('Corefile')]);
    await this.phase('node registered', () =>
      this.waitReady(
        `Node ${this.name} registered`,
        async () => (await this.cp.kubectl(['get', 'node', this.name, '-o', 'name'], { timeoutMs: 10_000 })).code === 0,
        timeoutMs,
        kubelet,
        containerd,
      ),
    );
    const kubeProxy = this.spawnProc('kube-proxy', join(this.nodeBin, 'kube-proxy'), [`--config=${this.path('kube-proxy-config.json')}`, '--v=1']);
    const all = [containerd, kubelet, kubeProxy, coredns, socat];
    await Promise.all([
      this.phase('node ready', () =>
        this.waitReady(
          `Node ${this.name} Ready and untainted`,
          async () => {
            const r = await this.cp.kubectl(['get', 'node', this.name, '-o', 'json'], { timeoutMs: 10_000 });
            if (r.code !== 0) return false;
            const node = JSON.parse(r.stdout) as { spec?: { taints?: { key: string }[] }; status?: { conditions?: { type: string; status: string }[] } };
            const ready = node.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
            const tainted = node.spec?.taints?.some((t) => t.key.startsWith('node.kubernetes.io/')) ?? false;
            return ready && !tainted;
          },
          timeoutMs,
          ...all,
        ),
      ),
      this.phase('kube-proxy synced', () =>
        this.waitReady('kube-proxy /healthz', async () => (await httpGet(`http://127.0.0.1:${proxyHealthz}/healthz`)).status === 200, timeoutMs, kubeProxy),
      ),
      this.phase('coredns ready', () =>
        this.waitReady('CoreDNS /ready', async () => (await httpGet(`http://127.0.0.1:${dnsReady}/ready`)).status === 200, timeoutMs, coredns),
      ),
      images,
    ]);
    // Cluster DNS through the kube-dns Service: kube-proxy's rules and CoreDNS together.
    await this.phase('dns answers', () =>
      this.waitReady(
        `kubernetes.default.svc.cluster.local via ${NODE_NETWORK.dnsServiceIP}`,
        async () => {
          const resolver = new Resolver({ timeout: 1000, tries: 1 });
          resolver.setServers([NODE_NETWORK.dnsServiceIP]);
          const addrs = await resolver.resolve4(`kubernetes.default.svc.${NODE_NETWORK.clusterDomain}`);
          return addrs.includes('10.0.0.1');
        },
        timeoutMs,
        ...all,
      ),
    );
    this.cp.nodeName = this.name;
    this.startupMs = Math.round(performance.now() - t0);
    this.say(
      `node ${this.name} ready in ${this.startupMs} ms (${Object.entries(this.timings)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ')})`,
    );
  }

  /** One real node per machine: kube-proxy's chains and the bridge are machine-wide. */
  private async lock(): Promise<void> {
    const waitS = Math.ceil((this.opts.lockTimeoutMs ?? 600_000) / 1000);
    const holder = this.spawnProc('lock', 'flock', ['-x', '-w', String(waitS), LOCK_FILE, 'sh', '-c', 'echo locked; exec sleep 2147483647'], 'pipe');
    let out = '';
    holder.child.stdout?.on('data', (d: string) => (out += d));
    await this.waitReady(
      `the real-node lock ${LOCK_FILE} (another real node runs on this machine: make cluster-local NODE=real, or another test)`,
      async () => out.includes('locked'),
      (waitS + 5) * 1000,
      holder,
    );
    // A node whose clean-up never ran (the machine rebooted mid-run is the known case): clean it now.
    const stale = this.bridgeAlias();
    if (stale !== undefined) {
      const staleDir = stale.startsWith(BRIDGE_ALIAS_PREFIX) ? stale.slice(BRIDGE_ALIAS_PREFIX.length) : '';
      if (staleDir && existsSync(join(staleDir, 'cleanup.sh'))) spawnSync('sh', [join(staleDir, 'cleanup.sh')], { stdio: 'ignore', timeout: 120_000 });
      if (this.bridgeAlias() !== undefined) {
        throw new Error(
          `bridge ${NODE_NETWORK.bridge} exists (alias "${stale}") while no real node holds ${LOCK_FILE}: remove it with \`ip link delete ${NODE_NETWORK.bridge}\``,
        );
      }
    }
  }

  private bridgeAlias(): string | undefined {
    try {
      return readFileSync(`/sys/class/net/${NODE_NETWORK.bridge}/ifalias`, 'utf8').trim();
    } catch {
      return undefined;
    }
  }

  private setUpNetwork(): void {
    const { bridge, nodeIP, podCIDR, serviceCIDR } = NODE_NETWORK;
    // What the clean-up puts back or removes: sysctls as they were, global folders we create.
    const sysctls = ['net/ipv4/ip_forward', 'net/bridge/bridge-nf-call-iptables', 'net/bridge/bridge-nf-call-ip6tables'];
    writeFileSync(this.path('sysctl.saved'), `${sysctls.map((k) => `${k} ${readFileSync(`/proc/sys/${k}`, 'utf8').trim()}`).join('\n')}\n`);
    // (Deepest first: the clean-up removes them in this order, when empty.)
    const globalDirs = [
      '/var/log/containers',
      '/var/lib/cni/results',
      '/var/lib/cni',
      '/var/lib/kubelet/device-plugins',
      '/var/lib/kubelet',
      '/run/containerd/s',
      '/run/containerd',
    ];
    writeFileSync(this.path('created-dirs'), `${globalDirs.filter((d) => !existsSync(d)).join('\n')}\n`);
    run('ip', ['link', 'add', bridge, 'type', 'bridge']);
    run('ip', ['link', 'set', bridge, 'alias', `${BRIDGE_ALIAS_PREFIX}${this.dir}`]);
    run('ip', ['addr', 'add', `${nodeIP}/${podCIDR.split('/')[1]}`, 'dev', bridge]);
    run('ip', ['link', 'set', bridge, 'up']);
    // Service addresses kube-proxy has not (yet) programmed go to the bridge, never to the uplink.
    run('ip', ['route', 'add', serviceCIDR, 'dev', bridge, 'src', nodeIP]);
    writeFileSync('/proc/sys/net/ipv4/ip_forward', '1');
    writeFileSync('/proc/sys/net/bridge/bridge-nf-call-iptables', '1');
    // The pods may talk to each other, to the node and to Services; nothing they send is
    // forwarded anywhere else (this machine's uplink included).
    run('iptables', ['-t', 'raw', '-N', 'KNODE-GUARD']);
    run('iptables', ['-t', 'raw', '-A', 'KNODE-GUARD', '-d', podCIDR, '-j', 'RETURN']);
    run('iptables', ['-t', 'raw', '-A', 'KNODE-GUARD', '-d', serviceCIDR, '-j', 'RETURN']);
    run('iptables', ['-t', 'raw', '-A', 'KNODE-GUARD', '-j', 'DROP']);
    run('iptables', [
      '-t',
      'raw',
      '-I',
      'PREROUTING',
      '-s',
      podCIDR,
      '-m',
      'comment',
      '--comment',
      'real test node: pods reach only the node, pods and Services',
      '-j',
      'KNODE-GUARD',
    ]);
  }

  /** kubelet's --cgroup-root must exist in every hierarchy; cpuset needs its cpus and mems set. */
  private setUpCgroups(): void {
    for (const h of readdirSync('/sys/fs/cgroup')) {
      const base = join('/sys/fs/cgroup', h);
      if (!existsSync(join(base, 'cgroup.procs'))) continue;
      mkdirSync(join(base, CGROUP_ROOT), { recursive: true });
      if (h === 'cpuset') {
        for (const f of ['cpuset.cpus', 'cpuset.mems']) writeFileSync(join(base, CGROUP_ROOT, f), readFileSync(join(base, f), 'utf8').trim());
      }
    }
  }

  private signServingCert(name: string, sans: string): void {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    writeFileSync(this.path(`${name}.key`), privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    run('openssl', [
      'req',
      '-x509',
      '-new',
      '-key',
      this.path(`${name}.key`),
      '-CA',
      join(this.cp.dir, 'ca.crt'),
      '-CAkey',
      join(this.cp.dir, 'ca.key'),
      '-subj',
      `/O=system:nodes/CN=system:node:${this.name}`,
      '-days',
      '7',
      '-sha256',
      '-out',
      this.path(`${name}.crt`),
      '-addext',
      'basicConstraints=critical,CA:FALSE',
      '-addext',
      'keyUsage=critical,digitalSignature,keyEncipherment',
      '-addext',
      'extendedKeyUsage=serverAuth',
      '-addext',
      `subjectAltName=${sans}`,
    ]);
  }

  private async writeConfigs(p: {
    kubeletPort: number;
    kubeletHealthz: number;
    proxyHealthz: number;
    proxyMetrics: number;
    dnsHealth: number;
    dnsReady: number;
  }): Promise<void> {
    const { nodeIP, podCIDR, dnsServiceIP, clusterDomain, bridge } = NODE_NETWORK;
    for (const d of ['containerd', 'cni/net.d', 'cni/ipam', 'kubelet/pki', 'pod-logs', 'volume-plugins']) mkdirSync(this.path(d), { recursive: true });

    // Identities, as kubeadm makes them: the kubelet as system:node:<name> in system:nodes
    // (Node authorizer), kube-proxy as system:kube-proxy (bound to system:node-proxier by the
    // default RBAC policy), CoreDNS as system:coredns (its ClusterRole is applied below).
    copyFileSync((await this.cp.userKubeConfig(`system:node:${this.name}`, ['system:nodes'])).path, this.path('kubelet.kubeconfig'));
    copyFileSync((await this.cp.userKubeConfig('system:kube-proxy')).path, this.path('kube-proxy.kubeconfig'));
    copyFileSync((await this.cp.userKubeConfig('system:coredns')).path, this.path('coredns.kubeconfig'));
    this.signServingCert('kubelet-serving', `IP:${nodeIP},DNS:${this.name}`);

    writeFileSync(
      this.path('cni', 'net.d', '10-knode.conflist'),
      JSON.stringify(
        {
          cniVersion: '1.0.0',
          name: this.netName,
          plugins: [
            {
              type: 'bridge',
              bridge,
              isGateway: true,
              ipMasq: false, // nothing leaves this machine, so nothing needs masquerading
              hairpinMode: true, // a pod reaches itself through its Service
              ipam: {
                type: 'host-local',
                ranges: [[{ subnet: podCIDR, gateway: nodeIP }]],
                routes: [{ dst: '0.0.0.0/0' }],
                dataDir: this.path('cni', 'ipam'),
              },
            },
            { type: 'portmap', capabilities: { portMappings: true } },
          ],
        },
        null,
        2,
      ),
    );

    const c = (s: string) => JSON.stringify(s);
    const ctrd = this.path('containerd');
    // No registry is reachable: an image that is not loaded fails at once on a local closed port
    // instead of being looked up outside.
    mkdirSync(join(ctrd, 'certs.d', '_default'), { recursive: true });
    writeFileSync(
      join(ctrd, 'certs.d', '_default', 'hosts.toml'),
      'server = "http://127.0.0.1:9"\n\n[host."http://127.0.0.1:9"]\n  capabilities = ["pull", "resolve"]\n',
    );
    writeFileSync(
      join(ctrd, 'config.toml'),
      `# Written by test/k8s/real-node.ts: a containerd of its own, all state in ${this.dir}.
version = 2
root = ${c(join(ctrd, 'root'))}
state = ${c(join(ctrd, 'state'))}
oom_score = 0
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = ${c(this.containerdSocket)}

[ttrpc]
  address = ${c(`${this.containerdSocket}.ttrpc`)}

[plugins."io.containerd.internal.v1.opt"]
  path = ${c(join(ctrd, 'opt'))}

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = ${c(this.pauseImage())}
  # No CAP_SYS_RESOURCE here: never ask for a lower oom_score_adj than containerd's own.
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  max_container_log_line_size = 16384

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "runc"
        Root = ${c(join(ctrd, 'runc'))}
        SystemdCgroup = false

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = ${c(this.path('cni', 'net.d'))}
    max_conf_num = 1

  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = ${c(join(ctrd, 'certs.d'))}
`,
    );

    // Pods get cluster DNS only: no search domains or servers from the host.
    writeFileSync(this.path('resolv.conf'), '');
    writeFileSync(
      this.path('kubelet-config.json'),
      JSON.stringify(
        {
          apiVersion: 'kubelet.config.k8s.io/v1beta1',
          kind: 'KubeletConfiguration',
          address: nodeIP,
          port: p.kubeletPort,
          readOnlyPort: 0,
          healthzBindAddress: '127.0.0.1',
          healthzPort: p.kubeletHealthz,
          authentication: {
            anonymous: { enabled: false },
            webhook: { enabled: true, cacheTTL: '10s' },
            x509: { clientCAFile: join(this.cp.dir, 'ca.crt') },
          },
          authorization: { mode: 'Webhook', webhook: { cacheAuthorizedTTL: '10s', cacheUnauthorizedTTL: '10s' } },
          tlsCertFile: this.path('kubelet-serving.crt'),
          tlsPrivateKeyFile: this.path('kubelet-serving.key'),
          rotateCertificates: false,
          serverTLSBootstrap: false,
          containerRuntimeEndpoint: `unix://${this.containerdSocket}`,
          // This machine: cgroup v1 (hybrid), no systemd, no swap accounting, no CAP_SYS_RESOURCE.
          cgroupDriver: 'cgroupfs',
          cgroupRoot: `/${CGROUP_ROOT}`,
          cgroupsPerQOS: true,
          failCgroupV1: false,
          failSwapOn: false,
          oomScoreAdj: 0,
          clusterDomain,
          clusterDNS: [dnsServiceIP],
          resolvConf: this.path('resolv.conf'),
          podLogsDir: this.path('pod-logs'),
          volumePluginDir: this.path('volume-plugins'),
          registerNode: true,
          maxPods: 110,
          // The images are loaded once and never pulled: never garbage-collect them, and do not
          // evict test pods because the shared disk is fuller than a production node's would be.
          imageGCHighThresholdPercent: 100,
          imageGCLowThresholdPercent: 99,
          evictionHard: { 'memory.available': '100Mi', 'nodefs.available': '1%', 'nodefs.inodesFree': '1%', 'imagefs.available': '1%' },
          shutdownGracePeriod: '0s',
          shutdownGracePeriodCriticalPods: '0s',
          kubeAPIQPS: 50,
          kubeAPIBurst: 100,
          serializeImagePulls: false,
        },
        null,
        2,
      ),
    );

    writeFileSync(
      this.path('kube-proxy-config.json'),
      JSON.stringify(
        {
          apiVersion: 'kubeproxy.config.k8s.io/v1alpha1',
          kind: 'KubeProxyConfiguration',
          clientConnection: { kubeconfig: this.path('kube-proxy.kubeconfig') },
          hostnameOverride: this.name,
          mode: 'iptables',
          clusterCIDR: podCIDR,
          detectLocalMode: 'ClusterCIDR',
          healthzBindAddress: `127.0.0.1:${p.proxyHealthz}`,
          metricsBindAddress: `127.0.0.1:${p.proxyMetrics}`,
          // NodePorts on the node's own address only (not on this machine's uplink or loopback).
          nodePortAddresses: [`${nodeIP}/32`],
          oomScoreAdj: 0,
          // Leave the machine's conntrack sysctls as they are.
          conntrack: { maxPerCore: 0, min: 0, tcpEstablishedTimeout: '0s', tcpCloseWaitTimeout: '0s' },
          iptables: { localhostNodePorts: false, masqueradeAll: false, syncPeriod: '30s', minSyncPeriod: '0s' },
        },
        null,
        2,
      ),
    );

    // As kubeadm's Corefile, without `forward`: names outside the cluster are refused here, since
    // nothing may leave this machine.
    writeFileSync(
      this.path('Corefile'),
      `${clusterDomain}:53 in-addr.arpa:53 ip6.arpa:53 {
    bind ${nodeIP}
    errors
    health 127.0.0.1:${p.dnsHealth}
    ready 127.0.0.1:${p.dnsReady}
    kubernetes ${clusterDomain} in-addr.arpa ip6.arpa {
        kubeconfig ${this.path('coredns.kubeconfig')} test
        pods insecure
        ttl 30
    }
    loadbalance
}
.:53 {
    bind ${nodeIP}
    errors
    template ANY ANY {
        rcode REFUSED
    }
}
`,
    );
  }

  private pauseImage(): string {
    // infra/images/build.sh tags the pause image with the version in Kubernetes' build/pause/Makefile.
    return this.pauseRef ?? 'pause:3.10.1';
  }

  private pauseRef?: string;

  private async startContainerd(timeoutMs: number): Promise<Proc> {
    // The images' content and unpacked layers (1.7 GB) in memory: the import is faster, and the
    // clean-up unmounts in a moment what rm -rf would take seconds to delete from the disk.
    mkdirSync(this.path('containerd', 'root'), { recursive: true });
    run('mount', ['-t', 'tmpfs', '-o', 'size=10g,mode=0700', 'k8s-test-real-node', this.path('containerd', 'root')]);
    const proc = this.spawnProc('containerd', 'containerd', ['--config', this.path('containerd', 'config.toml'), '--log-level', 'warn']);
    await this.waitReady(
      'containerd',
      async () => existsSync(this.containerdSocket) && (await this.ctr(['version'], { timeoutMs: 5000 })).code === 0,
      timeoutMs,
      proc,
    );
    return proc;
  }

  private async loadImages(): Promise<void> {
    const timeoutMs = this.opts.imagesTimeoutMs ?? 30 * 60_000;
    const r = await exec(join(root, 'infra', 'images', 'build.sh'), ['--load', this.containerdSocket], { timeoutMs });
    appendFileSync(this.path('images.log'), r.stderr);
    if (r.code !== 0)
      throw new Error(`infra/images/build.sh --load failed (exit ${r.code}); last lines:\n${r.stderr.trim().split('\n').slice(-30).join('\n')}`);
    this.images = r.stdout
      .trim()
      .split('\n')
      .map((l) => l.split(' ')[0])
      .filter(Boolean);
    const pause = this.images.find((i) => i.startsWith('pause:'));
    if (pause && pause !== this.pauseImage()) {
      throw new Error(`infra/images/build.sh built ${pause}, but containerd's sandbox_image is ${this.pauseImage()}: update real-node.ts`);
    }
  }

  /** RBAC for CoreDNS, the kube-dns Service, and the API server's endpoints for in-cluster clients. */
  private async applyClusterObjects(): Promise<void> {
    const { nodeIP, dnsServiceIP } = NODE_NETWORK;
    const apiPort = Number(new URL(this.cp.server).port);
    const managedBy = { 'endpointslice.kubernetes.io/managed-by': 'real-node.test.k8s.io' };
    await this.kubectlApply(
      [
        {
          apiVersion: 'rbac.authorization.k8s.io/v1',
          kind: 'ClusterRole',
          metadata: { name: 'system:coredns' },
          rules: [
            { apiGroups: [''], resources: ['endpoints', 'services', 'pods', 'namespaces'], verbs: ['list', 'watch'] },
            { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['list', 'watch'] },
          ],
        },
        {
          apiVersion: 'rbac.authorization.k8s.io/v1',
          kind: 'ClusterRoleBinding',
          metadata: { name: 'system:coredns' },
          roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'system:coredns' },
          subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: 'system:coredns' }],
        },
        {
          apiVersion: 'v1',
          kind: 'Service',
          metadata: { name: 'kube-dns', namespace: 'kube-system', labels: { 'k8s-app': 'kube-dns', 'kubernetes.io/name': 'CoreDNS' } },
          spec: {
            clusterIP: dnsServiceIP,
            ports: [
              { name: 'dns', port: 53, protocol: 'UDP', targetPort: 53 },
              { name: 'dns-tcp', port: 53, protocol: 'TCP', targetPort: 53 },
            ],
          },
        },
        {
          apiVersion: 'discovery.k8s.io/v1',
          kind: 'EndpointSlice',
          metadata: { name: 'kube-dns-node', namespace: 'kube-system', labels: { 'kubernetes.io/service-name': 'kube-dns', ...managedBy } },
          addressType: 'IPv4',
          endpoints: [{ addresses: [nodeIP], conditions: { ready: true } }],
          ports: [
            { name: 'dns', port: 53, protocol: 'UDP' },
            { name: 'dns-tcp', port: 53, protocol: 'TCP' },
          ],
        },
        // The API server listens on 127.0.0.1 (an address an Endpoints object may not hold):
        // in-cluster clients reach it at the "kubernetes" Service through a TCP relay on the node.
        {
          apiVersion: 'v1',
          kind: 'Endpoints',
          metadata: { name: 'kubernetes', namespace: 'default', labels: { 'endpointslice.kubernetes.io/skip-mirror': 'true' } },
          subsets: [{ addresses: [{ ip: nodeIP }], ports: [{ name: 'https', port: apiPort, protocol: 'TCP' }] }],
        },
        {
          apiVersion: 'discovery.k8s.io/v1',
          kind: 'EndpointSlice',
          metadata: { name: 'kubernetes', namespace: 'default', labels: { 'kubernetes.io/service-name': 'kubernetes', ...managedBy } },
          addressType: 'IPv4',
          endpoints: [{ addresses: [nodeIP], conditions: { ready: true } }],
          ports: [{ name: 'https', port: apiPort, protocol: 'TCP' }],
        },
      ],
      'CoreDNS RBAC, kube-dns, kubernetes endpoints',
    );
  }

  // -------------------------------------------------------------------------------------------

  /** The POSIX sh script that removes everything this node made (see the file's header). */
  private cleanupScript(): string {
    const v = (name: string, value: string) => `${name}=${sq(value)}`;
    return `#!/bin/sh
# Lists of pids and paths are split into words on purpose.
# shellcheck disable=SC2086
# Written by test/k8s/real-node.ts: stops and removes everything the real node "${this.name}" made.
# Idempotent. Run by RealNode.stop(), and through ${this.hookPath}
# by the control plane's stop(), its exit handler and its watchdog (after a SIGKILL).
${v('dir', this.dir)}
${v('hook', this.hookPath)}
${v('bridge', NODE_NETWORK.bridge)}
${v('alias', `${BRIDGE_ALIAS_PREFIX}${this.dir}`)}
${v('cgroot', CGROUP_ROOT)}
${v('net', this.netName)}
${v('sock', this.containerdSocket)}
${v('kubeproxy', join(this.nodeBin, 'kube-proxy'))}
marker="${MARK}=$dir"

# Pids of the processes started with our mark whose name matches the extended regexp $1.
marked() {
  grep -lzxF "$marker" /proc/[0-9]*/environ 2>/dev/null | while read -r f; do
    p=\${f#/proc/}; p=\${p%/environ}
    grep -qE "$1" "/proc/$p/comm" 2>/dev/null && ! grep -q '^State:[[:space:]]*Z' "/proc/$p/status" 2>/dev/null && echo "$p"
  done
}
# stop_marked REGEXP SECONDS: SIGTERM, then SIGKILL whatever is left after SECONDS.
stop_marked() {
  pids=$(marked "$1")
  [ -n "$pids" ] || return 0
  kill -TERM $pids 2>/dev/null
  i=0
  while [ $i -lt $(($2 * 10)) ]; do
    [ -n "$(marked "$1")" ] || return 0
    sleep 0.1; i=$((i + 1))
  done
  pids=$(marked "$1")
  [ -n "$pids" ] && kill -KILL $pids 2>/dev/null
  sleep 0.2
}
# The pods' processes: everything in the node's cgroups.
kill_pods() {
  i=0
  while [ $i -lt 100 ]; do
    procs=$(cat /sys/fs/cgroup/*/"$cgroot"/cgroup.procs 2>/dev/null; find /sys/fs/cgroup/*/"$cgroot" -mindepth 2 -name cgroup.procs -exec cat {} + 2>/dev/null)
    [ -n "$procs" ] || return 0
    kill -KILL $procs 2>/dev/null
    sleep 0.1; i=$((i + 1))
  done
}

stop_marked '^(kubelet|kube-proxy|coredns|socat)$' 5
if [ ! -f "$dir/locked" ]; then
  # Never got the lock: only our own processes (the lock holder) to stop.
  stop_marked '.' 5
  rm -rf "$dir"; rm -f "$hook"
  exit 0
fi
kill_pods
# Note the shims' sockets (named by a hash of containerd's socket, namespace and id) before
# containerd and its shims go: a killed shim leaves its socket behind.
shim_sockets=""
for b in "$dir"/containerd/state/io.containerd.runtime.v2.task/*/*; do
  [ -d "$b" ] || continue
  id=\${b##*/}; ns=\${b%/*}; ns=\${ns##*/}
  h=$(printf '%s' "$sock/$ns/$id" | sha256sum | cut -d' ' -f1)
  shim_sockets="$shim_sockets /run/containerd/s/$h"
done
stop_marked '^containerd' 5
stop_marked '.' 5

# Mounts under the node's folder (overlay root file systems, network namespaces, tmpfs volumes).
for _ in 1 2 3; do
  mps=$(awk -v d="$dir/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r)
  [ -n "$mps" ] || break
  for m in $mps; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; done
done

for c in /sys/fs/cgroup/*/; do
  [ -d "$c$cgroot" ] && find "$c$cgroot" -depth -type d -exec rmdir {} \\; 2>/dev/null
done

if [ "$(cat /sys/class/net/$bridge/ifalias 2>/dev/null)" = "$alias" ]; then
  ip link delete "$bridge" 2>/dev/null
fi

# kube-proxy's own clean-up, then every chain named KUBE-* (kube-proxy, kubelet), CNI-* (portmap)
# or KNODE-* (this harness) and the rules that jump to them. One real node runs at a time.
[ -x "$kubeproxy" ] && "$kubeproxy" --cleanup >/dev/null 2>&1
for fam in iptables ip6tables; do
  command -v "$fam-save" >/dev/null 2>&1 || continue
  rules=$("$fam-save" 2>/dev/null) || continue
  script=$(printf '%s\\n' "$rules" | awk '
    function flush() { if (n) { print t; printf "%s", dels; for (i = 1; i <= nc; i++) print "-F " ch[i]; for (i = 1; i <= nc; i++) print "-X " ch[i]; print "COMMIT" } }
    /^\\*/ { t = $0; n = 0; nc = 0; dels = ""; next }
    /^:/ { c = substr($1, 2); if (c ~ /^(KUBE-|CNI-|KNODE-)/) { ch[++nc] = c; n = 1 } next }
    /^-A / { if ($2 !~ /^(KUBE-|CNI-|KNODE-)/ && $0 ~ / -[jg] (KUBE-|CNI-|KNODE-)/) { sub(/^-A /, "-D "); dels = dels $0 "\\n"; n = 1 } next }
    /^COMMIT/ { flush(); n = 0; next }')
  [ -n "$script" ] && printf '%s\\n' "$script" | "$fam-restore" --noflush 2>/dev/null
done

if [ -f "$dir/sysctl.saved" ]; then
  while read -r k val; do [ -n "$k" ] && echo "$val" > "/proc/sys/$k" 2>/dev/null; done < "$dir/sysctl.saved"
fi
rm -f /var/lib/cni/results/"$net"-* $shim_sockets
# libcni's cache (containerd 1.6 cannot move it): the loopback plugin's entries name our netns.
for f in /var/lib/cni/results/*; do
  [ -f "$f" ] && grep -qF "$dir/" "$f" && rm -f "$f"
done
# kubelet's device-plugin socket has a fixed path.
rm -f /var/lib/kubelet/device-plugins/kubelet.sock
for l in /var/log/containers/*.log; do
  case $(readlink "$l" 2>/dev/null) in "$dir"/*) rm -f "$l" ;; esac
done
if [ -f "$dir/created-dirs" ]; then
  while read -r d; do [ -n "$d" ] && rmdir "$d" 2>/dev/null; done < "$dir/created-dirs"
fi
rm -rf "$dir"
rm -f "$hook"
exit 0
`;
  }

  stop(): Promise<void> {
    this.stopping ??= (async () => {
      const script = this.path('cleanup.sh');
      if (existsSync(script)) {
        const r = await exec('sh', [script], { timeoutMs: 120_000 });
        if (r.code !== 0) process.stderr.write(`[real-node] ${script} failed (exit ${r.code}): ${r.stderr}\n`);
      }
      await Promise.all([...this.procs.values()].map((p) => Promise.race([p.exited, sleep(5000)])));
      rmSync(this.hookPath, { force: true });
      rmSync(this.dir, { recursive: true, force: true });
      if (this.cp.nodeName === this.name) this.cp.nodeName = undefined;
      // The control plane may go on: the Node object of a node that is gone goes too.
      await this.cp.kubectl(['delete', 'node', this.name, '--ignore-not-found', '--wait=false'], { timeoutMs: 10_000 }).catch(() => {});
    })();
    return this.stopping;
  }
}

/**
 * Starts a real node next to a running control plane (started with `controllers: true`, and
 * `kwok: false` unless the fake node should stay), builds and loads the images, and waits until
 * the Node is Ready, kube-proxy has synced and cluster DNS answers through the kube-dns Service.
 */
export async function startRealNode(cp: ControlPlane, opts: RealNodeOptions = {}): Promise<RealNode> {
  const node = new RealNodeImpl(cp, opts);
  try {
    await node.start();
  } catch (err) {
    if (process.env.K8S_KEEP_TMP) {
      // The node's folder goes with its clean-up; its logs and configs stay beside it.
      const kept = `${node.dir}.failed`;
      mkdirSync(kept, { recursive: true });
      for (const f of readdirSync(node.dir)) if (/\.(log|json|toml|sh)$|^Corefile$/.test(f)) copyFileSync(join(node.dir, f), join(kept, f));
      process.stderr.write(`[real-node] start failed; logs and configs copied to ${kept}\n`);
    }
    await node.stop();
    throw err;
  }
  return node;
}

/** Pids of processes that carry a real node's mark (for tests: none after stop()). */
export function markedProcesses(dir: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const env = readFileSync(`/proc/${entry}/environ`, 'latin1').split('\0');
      if (!env.includes(`${MARK}=${dir}`)) continue;
      if (/^State:\s*Z/m.test(readFileSync(`/proc/${entry}/status`, 'utf8'))) continue;
      pids.push(Number(entry));
    } catch {
      /* gone */
    }
  }
  return pids;
}

/** Mount points under `dir` (for tests: none after stop()). */
export function mountsUnder(dir: string): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4])
    .filter((m): m is string => !!m && m.startsWith(`${dir}/`));
}

export { CGROUP_ROOT as REAL_NODE_CGROUP_ROOT };
