// A real Kubernetes control plane for tests, started the way controller-runtime's envtest does it:
// etcd and kube-apiserver on free loopback ports with generated certificates, RBAC on, an admin
// client certificate (O=system:masters). With `controllers: true` it adds kube-controller-manager,
// kube-scheduler and kwok managing one fake Node, so Deployments become Available and Jobs finish.
// The binaries are built from source by test/k8s/build-bins.sh (a no-op when already built).
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, appendFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KubeConfig } from '@kubernetes/client-node';
import { freePorts, runCommand, spawnLogged, tail, type Proc } from '../helpers/processes.ts';

const here = dirname(fileURLToPath(import.meta.url));

export interface ControlPlaneOptions {
  /** Also run kube-controller-manager, kube-scheduler and kwok with one fake Node. */
  controllers?: boolean;
  /** With `controllers`: run kwok and its fake Node (default true). false: no node until one joins (real-node.ts). */
  kwok?: boolean;
  /** With kwok: rewrites kwok's stages (the YAML built from sigs.k8s.io/kwok's fast pod and node stages). */
  kwokStages?: (stages: string) => string;
  /** Stream the components' logs to stderr (always written to files in the temp folder too). */
  log?: boolean;
  /** Overall start-up deadline (default 120 s). */
  timeoutMs?: number;
}

export interface ExecResult {
  stdout: string;
  stderr: string;
  code: number;
}

export interface KubectlOptions {
  /** Written to kubectl's standard input (for `apply -f -`). */
  input?: string;
  /** Kill kubectl after this long (default 60 s). */
  timeoutMs?: number;
  /** Use this kubeconfig instead of the admin one. */
  kubeconfigPath?: string;
}

/** A kubeconfig written to a file for one identity. */
export interface UserKubeConfig {
  path: string;
  kubeConfig(): KubeConfig;
}

export interface ControlPlane {
  /** The admin kubeconfig (client certificate in group system:masters). */
  kubeconfigPath: string;
  /** The API server's https URL. */
  server: string;
  /** Folder holding kubectl, kube-apiserver, etcd, ... */
  binDir: string;
  /** Temp folder holding certificates, etcd's data and the components' logs. */
  dir: string;
  /** Milliseconds from the call to startControlPlane until everything was ready. */
  startupMs: number;
  /** Milliseconds each start-up phase took. */
  timings: Record<string, number>;
  /** Name of the fake Node (controllers only), or of the real node once startRealNode has started it. */
  nodeName?: string;
  /** A fresh KubeConfig loaded from the admin kubeconfig. */
  kubeConfig(): KubeConfig;
  /** Runs the built kubectl against this control plane (admin unless opts.kubeconfigPath). */
  kubectl(args: string[], opts?: KubectlOptions): Promise<ExecResult>;
  /** A kubeconfig authenticating as `user` in `groups` with a client certificate signed by the cluster CA. */
  userKubeConfig(user: string, groups?: string[]): Promise<UserKubeConfig>;
  /** A kubeconfig with a bound token (TokenRequest API) of an existing ServiceAccount. */
  serviceAccountKubeConfig(namespace: string, name: string, expirationSeconds?: number): Promise<UserKubeConfig>;
  /** The admin kubeconfig impersonating `user` (client-node supports only the user, not groups). */
  impersonatedKubeConfig(user: string): KubeConfig;
  /** Stops only kube-apiserver (SIGTERM, then SIGKILL). */
  stopApiServer(): Promise<void>;
  /** Starts kube-apiserver again on the same port and waits for /readyz. */
  startApiServer(): Promise<void>;
  /** Kills everything this control plane started and removes its temp folder. Idempotent. */
  stop(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// Binaries

let binDirPromise: Promise<string> | undefined;

/** The folder with the pinned binaries; runs test/k8s/build-bins.sh (a fast no-op when built). */
export function ensureBinaries(): Promise<string> {
  if (process.env.K8S_BIN_DIR) return Promise.resolve(process.env.K8S_BIN_DIR);
  binDirPromise ??= new Promise<string>((resolve, reject) => {
    const child = spawn(join(here, 'build-bins.sh'), [], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.on('error', reject);
    child.on('exit', (code) => {
      const dir = out.trim().split('\n').pop() ?? '';
      if (code === 0 && dir) resolve(dir);
      else reject(new Error(`test/k8s/build-bins.sh failed (exit ${code}); run \`make k8s-bins\` to see why`));
    });
  });
  return binDirPromise;
}

// ---------------------------------------------------------------------------------------------
// Small helpers

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// One waitFor for every test (test/helpers/processes.ts); re-exported for the Kubernetes tests.
export { waitFor } from '../helpers/processes.ts';

export { freePorts };

function openssl(args: string[], cwd: string): void {
  const r = spawnSync('openssl', args, { cwd, encoding: 'utf8' });
  if (r.error) throw new Error(`openssl not runnable: ${r.error.message} (install the openssl package)`);
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')} failed: ${r.stderr}`);
}

function ecKey(path: string): void {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  writeFileSync(path, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
}

/** Creates `<name>.key` and `<name>.crt`, signed by the CA in `dir`. */
function signCert(dir: string, name: string, subject: string, ext: string[]): void {
  ecKey(join(dir, `${name}.key`));
  openssl(
    [
      'req',
      '-x509',
      '-new',
      '-key',
      `${name}.key`,
      '-CA',
      'ca.crt',
      '-CAkey',
      'ca.key',
      '-subj',
      subject,
      '-days',
      '7',
      '-sha256',
      '-out',
      `${name}.crt`,
      '-addext',
      'basicConstraints=critical,CA:FALSE',
      '-addext',
      'keyUsage=critical,digitalSignature,keyEncipherment',
      ...ext.flatMap((e) => ['-addext', e]),
    ],
    dir,
  );
}

function b64(path: string): string {
  return readFileSync(path).toString('base64');
}

function kubeconfigJSON(server: string, caFile: string, user: Record<string, unknown>, extra: Record<string, unknown> = {}) {
  return JSON.stringify(
    {
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'test', cluster: { server, 'certificate-authority-data': b64(caFile) } }],
      users: [{ name: 'user', user: { ...user, ...extra } }],
      contexts: [{ name: 'test', context: { cluster: 'test', user: 'user', namespace: 'default' } }],
      'current-context': 'test',
    },
    null,
    2,
  );
}

interface HttpResult {
  status: number;
  body: string;
}

function get(url: string, tls?: { ca?: Buffer; cert?: Buffer; key?: Buffer; insecure?: boolean }): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const opts = {
      method: 'GET',
      timeout: 5000,
      ...(u.protocol === 'https:' ? { ca: tls?.ca, cert: tls?.cert, key: tls?.key, rejectUnauthorized: !tls?.insecure } : {}),
    };
    const req = (u.protocol === 'https:' ? httpsRequest : httpRequest)(u, opts, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

// ---------------------------------------------------------------------------------------------
// Processes

const live = new Set<ControlPlaneImpl>();
let handlersInstalled = false;

function installExitHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  // Last resort on any exit: no waiting possible, so SIGKILL and remove the folders.
  process.on('exit', () => {
    for (const cp of live) cp.killSync();
  });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      void stopAll().finally(() => process.exit(128 + (sig === 'SIGINT' ? 2 : sig === 'SIGTERM' ? 15 : 1)));
    });
  }
}

/** Stops every control plane this process started. */
export async function stopAll(): Promise<void> {
  await Promise.allSettled([...live].map((cp) => cp.stop()));
}

// Reaps the components if this Node.js process dies without running its exit handlers (SIGKILL):
// polls the parent pid, runs the clean-up hooks in <dir>/cleanup.d (see runCleanupHooks), then kills
// the pids listed in <dir>/pids that still run one of our binaries.
const WATCHDOG = `
parent=$1 dir=$2 bindir=$3
while kill -0 "$parent" 2>/dev/null && [ -d "$dir" ]; do sleep 1; done
[ -d "$dir" ] || exit 0
for f in "$dir"/cleanup.d/*.sh; do [ -f "$f" ] && sh "$f" >/dev/null 2>&1; done
ours() { grep -qaF "$bindir" "/proc/$1/cmdline" 2>/dev/null; }
for p in $(cat "$dir/pids" 2>/dev/null); do ours "$p" && kill -TERM "$p" 2>/dev/null; done
sleep 5
for p in $(cat "$dir/pids" 2>/dev/null); do ours "$p" && kill -KILL "$p" 2>/dev/null; done
rm -rf "$dir"
`;

class ControlPlaneImpl implements ControlPlane {
  kubeconfigPath = '';
  server = '';
  binDir: string;
  dir: string;
  startupMs = 0;
  timings: Record<string, number> = {};
  nodeName?: string;

  private opts: ControlPlaneOptions;
  private procs = new Map<string, Proc>();
  private watchdog?: ChildProcess;
  private apiArgs: string[] = [];
  private apiPort = 0;
  private stopped = false;
  private stopping?: Promise<void>;
  private userCount = 0;

  constructor(binDir: string, opts: ControlPlaneOptions) {
    this.binDir = binDir;
    this.opts = opts;
    this.dir = mkdtempSync(join(tmpdir(), 'k8s-cp-'));
    writeFileSync(join(this.dir, 'pids'), '');
    live.add(this);
    installExitHandlers();
    this.watchdog = spawn('sh', ['-c', WATCHDOG, 'watchdog', String(process.pid), this.dir, this.binDir], {
      detached: true,
      stdio: 'ignore',
    });
    this.watchdog.unref();
  }

  log(msg: string): void {
    if (this.opts.log) process.stderr.write(`[control-plane] ${msg}\n`);
  }

  private path(name: string): string {
    return join(this.dir, name);
  }

  private spawnComponent(name: string, bin: string, args: string[]): Proc {
    const proc = spawnLogged(name, join(this.binDir, bin), args, {
      cwd: this.dir,
      env: { ...process.env, HOME: this.dir },
      logPath: this.path(`${name}.log`),
      pipe: this.opts.log === true,
      echo: true,
    });
    if (proc.child.pid) appendFileSync(this.path('pids'), `${proc.child.pid}\n`);
    this.procs.set(name, proc);
    return proc;
  }

  /** Polls `check` until it returns true; fails fast when `proc` exits, or at the deadline. */
  private async waitReady(what: string, check: () => Promise<boolean>, timeoutMs: number, proc?: Proc): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let lastErr = '';
    for (let delay = 50; ; delay = Math.min(delay * 2, 500)) {
      if (proc && proc.exitCode !== undefined) {
        throw new Error(`${proc.name} exited (code ${proc.exitCode}) while waiting for ${what}; last log lines:\n${tail(proc.logPath)}`);
      }
      try {
        if (await check()) return;
      } catch (err) {
        lastErr = (err as Error).message;
      }
      if (Date.now() > deadline) {
        const logs = proc ? `\nlast ${proc.name} log lines:\n${tail(proc.logPath)}` : '';
        throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastErr ? ` (last error: ${lastErr})` : ''}${logs}`);
      }
      await sleep(delay);
    }
  }

  private async phase<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const t0 = performance.now();
    const r = await fn();
    this.timings[name] = Math.round(performance.now() - t0);
    this.log(`${name}: ${this.timings[name]} ms`);
    return r;
  }

  private tlsAdmin() {
    return {
      ca: readFileSync(this.path('ca.crt')),
      cert: readFileSync(this.path('admin.crt')),
      key: readFileSync(this.path('admin.key')),
    };
  }

  async start(): Promise<void> {
    const t0 = performance.now();
    const timeoutMs = this.opts.timeoutMs ?? 120_000;
    await this.phase('certs', async () => this.makeCerts());
    await this.phase('etcd', () => this.startEtcd(timeoutMs));
    await this.phase('kube-apiserver', async () => {
      [this.apiPort] = await freePorts(1);
      this.server = `https://127.0.0.1:${this.apiPort}`;
      this.apiArgs = this.apiServerArgs();
      this.writeKubeconfigs();
      await this.startApiServer(timeoutMs);
    });
    if (this.opts.controllers) {
      await this.phase('controllers', () => this.startControllers(timeoutMs));
    }
    this.startupMs = Math.round(performance.now() - t0);
  }

  private makeCerts(): void {
    const d = this.dir;
    ecKey(this.path('ca.key'));
    openssl(
      [
        'req',
        '-x509',
        '-new',
        '-key',
        'ca.key',
        '-subj',
        '/CN=test-control-plane-ca',
        '-days',
        '7',
        '-sha256',
        '-out',
        'ca.crt',
        '-addext',
        'basicConstraints=critical,CA:TRUE',
        '-addext',
        'keyUsage=critical,keyCertSign,cRLSign,digitalSignature',
      ],
      d,
    );
    signCert(d, 'apiserver', '/CN=kube-apiserver', [
      'subjectAltName=IP:127.0.0.1,DNS:localhost,IP:10.0.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local',
      'extendedKeyUsage=serverAuth',
    ]);
    signCert(d, 'admin', '/O=system:masters/CN=admin', ['extendedKeyUsage=clientAuth']);
    // The API server's client certificate for kubelets (logs, exec, port-forward), as kubeadm's.
    signCert(d, 'apiserver-kubelet-client', '/O=system:masters/CN=kube-apiserver-kubelet-client', ['extendedKeyUsage=clientAuth']);
    // Front proxy (request-header authentication), as kubeadm sets it up: lets aggregated API
    // servers and the controllers' delegated authentication find a requestheader CA.
    signCert(d, 'front-proxy-client', '/CN=front-proxy-client', ['extendedKeyUsage=clientAuth']);
    // Service-account token signing key pair.
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    writeFileSync(this.path('sa.key'), privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    writeFileSync(this.path('sa.pub'), publicKey.export({ type: 'spki', format: 'pem' }));
  }

  private async startEtcd(timeoutMs: number): Promise<void> {
    // Free ports can be taken between the probe and etcd's bind: retry with new ones.
    for (let attempt = 1; ; attempt++) {
      const [client, peer] = await freePorts(2);
      const etcd = this.spawnComponent('etcd', 'etcd', [
        '--name=default',
        `--data-dir=${this.path('etcd-data')}`,
        `--listen-client-urls=http://127.0.0.1:${client}`,
        `--advertise-client-urls=http://127.0.0.1:${client}`,
        `--listen-peer-urls=http://127.0.0.1:${peer}`,
        `--initial-advertise-peer-urls=http://127.0.0.1:${peer}`,
        `--initial-cluster=default=http://127.0.0.1:${peer}`,
        '--unsafe-no-fsync=true', // envtest's choice: tests need no durability across power loss
        '--quota-backend-bytes=2147483648',
        '--log-level=warn',
      ]);
      try {
        await this.waitReady(
          'etcd /health',
          async () => {
            const r = await get(`http://127.0.0.1:${client}/health`);
            return r.status === 200 && r.body.includes('"true"');
          },
          timeoutMs,
          etcd,
        );
        this.etcdURL = `http://127.0.0.1:${client}`;
        return;
      } catch (err) {
        if (attempt >= 3 || !tail(etcd.logPath).includes('address already in use')) throw err;
        this.procs.delete('etcd');
        rmSync(this.path('etcd-data'), { recursive: true, force: true });
      }
    }
  }

  private etcdURL = '';

  private apiServerArgs(): string[] {
    const p = (f: string) => this.path(f);
    return [
      `--etcd-servers=${this.etcdURL}`,
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      `--secure-port=${this.apiPort}`,
      `--cert-dir=${p('apiserver-certs')}`,
      `--tls-cert-file=${p('apiserver.crt')}`,
      `--tls-private-key-file=${p('apiserver.key')}`,
      `--client-ca-file=${p('ca.crt')}`,
      `--requestheader-client-ca-file=${p('ca.crt')}`,
      '--requestheader-allowed-names=front-proxy-client',
      '--requestheader-username-headers=X-Remote-User',
      '--requestheader-group-headers=X-Remote-Group',
      '--requestheader-extra-headers-prefix=X-Remote-Extra-',
      `--proxy-client-cert-file=${p('front-proxy-client.crt')}`,
      `--proxy-client-key-file=${p('front-proxy-client.key')}`,
      '--authorization-mode=Node,RBAC',
      '--anonymous-auth=true', // /readyz, /livez, /version for probes, as in a real cluster
      `--service-account-key-file=${p('sa.pub')}`,
      `--service-account-signing-key-file=${p('sa.key')}`,
      '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
      '--service-cluster-ip-range=10.0.0.0/24',
      '--allow-privileged=true',
      // A real kubelet (real-node.ts): authenticate to it, check its serving certificate, reach
      // it at the node's InternalIP (its hostname does not resolve).
      `--kubelet-client-certificate=${p('apiserver-kubelet-client.crt')}`,
      `--kubelet-client-key=${p('apiserver-kubelet-client.key')}`,
      `--kubelet-certificate-authority=${p('ca.crt')}`,
      '--kubelet-preferred-address-types=InternalIP',
      // The "kubernetes" Service's endpoints would be 127.0.0.1, which Endpoints validation refuses.
      '--endpoint-reconciler-type=none',
      // On SIGTERM, end the clients' open watches (they re-connect) instead of waiting for them.
      '--shutdown-watch-termination-grace-period=2s',
      '--profiling=false',
      '--v=0',
    ];
  }

  private writeKubeconfigs(): void {
    this.kubeconfigPath = this.path('admin.kubeconfig');
    writeFileSync(
      this.kubeconfigPath,
      kubeconfigJSON(this.server, this.path('ca.crt'), {
        'client-certificate-data': b64(this.path('admin.crt')),
        'client-key-data': b64(this.path('admin.key')),
      }),
      { mode: 0o600 },
    );
  }

  async startApiServer(timeoutMs = this.opts.timeoutMs ?? 120_000): Promise<void> {
    if (this.stopped) throw new Error('control plane already stopped');
    const existing = this.procs.get('kube-apiserver');
    if (existing && existing.exitCode === undefined) throw new Error('kube-apiserver is already running');
    const proc = this.spawnComponent('kube-apiserver', 'kube-apiserver', this.apiArgs);
    const tls = this.tlsAdmin();
    await this.waitReady('kube-apiserver /readyz', async () => (await get(`${this.server}/readyz`, tls)).status === 200, timeoutMs, proc);
  }

  async stopApiServer(): Promise<void> {
    await this.stopProc('kube-apiserver');
  }

  private async stopProc(name: string, graceMs = 10_000): Promise<void> {
    const proc = this.procs.get(name);
    if (!proc) return;
    if (proc.exitCode === undefined && proc.child.pid) {
      try {
        process.kill(proc.child.pid, 'SIGTERM');
      } catch {
        /* already gone */
      }
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), graceMs)));
      const first = await Promise.race([proc.exited, timeout]);
      clearTimeout(timer);
      if (first === 'timeout' && proc.exitCode === undefined) {
        try {
          process.kill(proc.child.pid, 'SIGKILL');
        } catch {
          /* already gone */
        }
        await proc.exited;
      }
    }
    this.procs.delete(name);
  }

  private async startControllers(timeoutMs: number): Promise<void> {
    const kc = this.kubeconfigPath;
    const [kcmPort, schedPort] = await freePorts(2);
    const kcm = this.spawnComponent('kube-controller-manager', 'kube-controller-manager', [
      `--kubeconfig=${kc}`,
      `--authentication-kubeconfig=${kc}`,
      `--authorization-kubeconfig=${kc}`,
      '--bind-address=127.0.0.1',
      `--secure-port=${kcmPort}`,
      `--cert-dir=${this.path('kcm-certs')}`,
      '--leader-elect=false',
      '--controllers=*',
      '--use-service-account-credentials=true',
      `--service-account-private-key-file=${this.path('sa.key')}`,
      `--root-ca-file=${this.path('ca.crt')}`,
      `--cluster-signing-cert-file=${this.path('ca.crt')}`,
      `--cluster-signing-key-file=${this.path('ca.key')}`,
      '--cluster-name=test',
      `--flex-volume-plugin-dir=${this.path('flexvolume')}`, // default is under /usr/libexec
      // Test speed: bind claims within a second (default 15 s) and let many Jobs start quickly.
      '--pvclaimbinder-sync-period=1s',
      '--kube-api-qps=100',
      '--kube-api-burst=200',
      '--profiling=false',
      '--v=0',
    ]);
    const sched = this.spawnComponent('kube-scheduler', 'kube-scheduler', [
      `--kubeconfig=${kc}`,
      `--authentication-kubeconfig=${kc}`,
      `--authorization-kubeconfig=${kc}`,
      '--bind-address=127.0.0.1',
      `--secure-port=${schedPort}`,
      `--cert-dir=${this.path('scheduler-certs')}`,
      '--leader-elect=false',
      '--profiling=false',
      '--v=0',
    ]);
    const tlsAny = { insecure: true };
    const waits = () => [
      this.waitReady(
        'kube-controller-manager /healthz',
        async () => (await get(`https://127.0.0.1:${kcmPort}/healthz`, tlsAny)).status === 200,
        timeoutMs,
        kcm,
      ),
      this.waitReady('kube-scheduler /readyz', async () => (await get(`https://127.0.0.1:${schedPort}/readyz`, tlsAny)).status === 200, timeoutMs, sched),
      // Pods need their namespace's "default" ServiceAccount: proof the controllers run.
      this.waitReady(
        'ServiceAccount default/default',
        async () => (await get(`${this.server}/api/v1/namespaces/default/serviceaccounts/default`, this.tlsAdmin())).status === 200,
        timeoutMs,
        kcm,
      ),
    ];
    if (this.opts.kwok === false) {
      await Promise.all(waits());
      return;
    }
    this.nodeName = 'kwok-node-0';
    let stages = join(this.binDir, 'kwok-stages.yaml');
    if (this.opts.kwokStages) {
      const rewritten = join(this.dir, 'kwok-stages.yaml');
      writeFileSync(rewritten, this.opts.kwokStages(readFileSync(stages, 'utf8')));
      stages = rewritten;
    }
    const kwok = this.spawnComponent('kwok', 'kwok', [
      `--kubeconfig=${kc}`,
      `--config=${stages}`,
      '--manage-all-nodes=false',
      '--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake',
      '--node-lease-duration-seconds=40',
      '--cidr=10.244.0.0/16',
      '--node-ip=127.0.0.1',
    ]);
    await this.kubectl(['apply', '-f', '-'], { input: JSON.stringify(fakeNode(this.nodeName)) }).then((r) => {
      if (r.code !== 0) throw new Error(`creating the fake node failed: ${r.stderr}`);
    });
    await Promise.all([
      ...waits(),
      this.waitReady(
        `node ${this.nodeName} Ready (kwok)`,
        async () => {
          const r = await get(`${this.server}/api/v1/nodes/${this.nodeName}`, this.tlsAdmin());
          if (r.status !== 200) return false;
          const node = JSON.parse(r.body) as { spec?: { taints?: { key: string }[] }; status?: { conditions?: { type: string; status: string }[] } };
          const ready = node.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
          // The node lifecycle controller removes its not-ready taint once it has seen the node Ready.
          const tainted = node.spec?.taints?.some((t) => t.key.startsWith('node.kubernetes.io/')) ?? false;
          return ready && !tainted;
        },
        timeoutMs,
        kwok,
      ),
    ]);
  }

  kubeConfig(): KubeConfig {
    const kc = new KubeConfig();
    kc.loadFromFile(this.kubeconfigPath);
    return kc;
  }

  kubectl(args: string[], opts: KubectlOptions = {}): Promise<ExecResult> {
    return runCommand(join(this.binDir, 'kubectl'), ['--kubeconfig', opts.kubeconfigPath ?? this.kubeconfigPath, ...args], {
      env: { ...process.env, HOME: this.dir, KUBECONFIG: '' },
      ...(opts.input !== undefined ? { input: opts.input } : {}),
      ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}),
    });
  }

  private writeUserKubeconfig(user: Record<string, unknown>, extra: Record<string, unknown> = {}): UserKubeConfig {
    const path = this.path(`user-${++this.userCount}.kubeconfig`);
    writeFileSync(path, kubeconfigJSON(this.server, this.path('ca.crt'), user, extra), { mode: 0o600 });
    return {
      path,
      kubeConfig() {
        const kc = new KubeConfig();
        kc.loadFromFile(path);
        return kc;
      },
    };
  }

  async userKubeConfig(user: string, groups: string[] = []): Promise<UserKubeConfig> {
    const name = `user-${this.userCount + 1}`;
    const esc = (s: string) => s.replace(/[/\\=+,]/g, (c) => `\\${c}`);
    const subject = `${groups.map((g) => `/O=${esc(g)}`).join('')}/CN=${esc(user)}`;
    signCert(this.dir, name, subject, ['extendedKeyUsage=clientAuth']);
    return this.writeUserKubeconfig({
      'client-certificate-data': b64(this.path(`${name}.crt`)),
      'client-key-data': b64(this.path(`${name}.key`)),
    });
  }

  async serviceAccountKubeConfig(namespace: string, name: string, expirationSeconds = 3600): Promise<UserKubeConfig> {
    const r = await this.kubectl(['create', 'token', name, '-n', namespace, `--duration=${expirationSeconds}s`]);
    if (r.code !== 0) throw new Error(`kubectl create token ${namespace}/${name} failed: ${r.stderr}`);
    return this.writeUserKubeconfig({ token: r.stdout.trim() });
  }

  impersonatedKubeConfig(user: string): KubeConfig {
    const kc = new KubeConfig();
    kc.loadFromString(
      kubeconfigJSON(this.server, this.path('ca.crt'), {
        'client-certificate-data': b64(this.path('admin.crt')),
        'client-key-data': b64(this.path('admin.key')),
        as: user,
      }),
    );
    return kc;
  }

  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.stopped = true;
      await this.runCleanupHooks();
      // Reverse start order: clients of the API first, etcd last.
      for (const name of ['kwok', 'kube-scheduler', 'kube-controller-manager']) await this.stopProc(name, 5_000);
      await this.stopProc('kube-apiserver', 10_000);
      await this.stopProc('etcd', 10_000);
      if (this.watchdog?.pid) {
        try {
          process.kill(this.watchdog.pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
      if (!process.env.K8S_KEEP_TMP) rmSync(this.dir, { recursive: true, force: true });
      else this.log(`kept ${this.dir} (K8S_KEEP_TMP)`);
      live.delete(this);
    })();
    return this.stopping;
  }

  /** Clean-up hooks that parts started next to this control plane (real-node.ts) leave in <dir>/cleanup.d/*.sh. */
  private hooks(): string[] {
    try {
      return readdirSync(this.path('cleanup.d'))
        .filter((f) => f.endsWith('.sh'))
        .sort()
        .map((f) => this.path(join('cleanup.d', f)));
    } catch {
      return [];
    }
  }

  /**
   * Runs each clean-up hook (bounded by a time-out) and removes it, before anything else stops.
   * The watchdog runs the same files after a SIGKILL; killSync runs them synchronously.
   */
  private async runCleanupHooks(): Promise<void> {
    for (const hook of this.hooks()) {
      // No stdin pipe: a hook that is quickly done must not fail this with an EPIPE.
      const code = await new Promise<number | null>((resolve) => {
        const child = spawn('sh', [hook], { stdio: ['ignore', 'ignore', 'inherit'] });
        const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
        child.on('error', () => resolve(-1));
        child.on('exit', (c) => {
          clearTimeout(timer);
          resolve(c);
        });
      });
      if (code !== 0) process.stderr.write(`[control-plane] clean-up hook ${hook} failed (exit ${code})\n`);
      rmSync(hook, { force: true });
    }
  }

  /** Synchronous last-resort cleanup for process 'exit'. */
  killSync(): void {
    for (const hook of this.hooks()) {
      spawnSync('sh', [hook], { stdio: 'ignore', timeout: 120_000 });
      rmSync(hook, { force: true });
    }
    for (const proc of this.procs.values()) {
      if (proc.exitCode === undefined && proc.child.pid) {
        try {
          process.kill(proc.child.pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
    }
    if (this.watchdog?.pid) {
      try {
        process.kill(this.watchdog.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    rmSync(this.dir, { recursive: true, force: true });
    live.delete(this);
  }
}

function fakeNode(name: string) {
  const resources = { cpu: '32', memory: '256Gi', pods: '110', 'ephemeral-storage': '1Ti' };
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name,
      annotations: { 'kwok.x-k8s.io/node': 'fake', 'node.alpha.kubernetes.io/ttl': '0' },
      labels: {
        'kubernetes.io/arch': 'amd64',
        'kubernetes.io/os': 'linux',
        'kubernetes.io/hostname': name,
        'kubernetes.io/role': 'agent',
        'node-role.kubernetes.io/agent': '',
        type: 'kwok',
      },
    },
    spec: {},
    status: { allocatable: resources, capacity: resources },
  };
}

/** Starts etcd + kube-apiserver (and, with `controllers`, kube-controller-manager, kube-scheduler and kwok). */
export async function startControlPlane(opts: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const t0 = performance.now();
  const binDir = await ensureBinaries();
  const cp = new ControlPlaneImpl(binDir, opts);
  try {
    await cp.start();
  } catch (err) {
    const dir = cp.dir;
    if (process.env.K8S_KEEP_TMP) process.stderr.write(`[control-plane] start failed; logs kept in ${dir}\n`);
    await cp.stop();
    throw err;
  }
  // Count the (normally instant) binaries check too.
  cp.startupMs = Math.round(performance.now() - t0);
  cp.log(
    `ready in ${cp.startupMs} ms (${Object.entries(cp.timings)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}) at ${cp.server}; kubeconfig ${cp.kubeconfigPath}`,
  );
  return cp;
}

/** Reads a component log of a running control plane (for debugging failing tests). */
export function readComponentLog(cp: ControlPlane, component: string): Promise<string> {
  return readFile(join(cp.dir, `${component}.log`), 'utf8');
}
