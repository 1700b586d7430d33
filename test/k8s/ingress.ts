// An ingress controller next to the test control plane (control-plane.ts): Traefik, the
// controller `make cluster` installs in kind (infra/traefik-values.yaml), built from source by
// test/k8s/build-traefik.sh and run as a host process. Its Kubernetes Ingress provider watches the
// control plane through a ServiceAccount with the RBAC Traefik documents for that provider, serves
// the Ingresses of one IngressClass, and sends requests straight to the pods' endpoints on the
// real node's bridge (real-node.ts), as Traefik does in a cluster.
//
//   const cp = await startControlPlane({ controllers: true, kwok: false });
//   const node = await startRealNode(cp);
//   const ingress = await startIngressController(cp);   // RBAC, IngressClass, Traefik listening
//   // kubectl apply a Deployment, a Service and an Ingress with ingressClassName ingress.ingressClass
//   await ingress.waitForIngress('analytics', 'analytics-api');
//   await fetch(`${ingress.url}/health`);
//   await ingress.stop();                                 // or cp.stop(), which runs its clean-up
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { appendFileSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { INGRESS_CLASS } from '../../infra/names.ts';
import { httpGet } from '../helpers/http.ts';
import { freePorts, type ControlPlane } from './control-plane.ts';

const here = dirname(fileURLToPath(import.meta.url));

/** Where the controller's identity lives in the test cluster (the kind install's namespace and names). */
export const TRAEFIK_NAMESPACE = 'traefik';
const SERVICE_ACCOUNT = 'traefik';
const CLUSTER_ROLE = 'traefik-ingress-controller';
/** The controller name Traefik's Ingress provider looks for in an IngressClass. */
export const TRAEFIK_CONTROLLER = 'traefik.io/ingress-controller';

export interface IngressControllerOptions {
  /** The IngressClass to create and watch (default INGRESS_CLASS, the manifests' ingressClassName). */
  ingressClass?: string;
  /** The address the HTTP entry point listens on: 127.0.0.1 (default) or e.g. the node's bridge address. */
  host?: string;
  /** Stream Traefik's log to stderr (default: K8S_TEST_LOG=1). Always written to <dir>/traefik.log. */
  log?: boolean;
  /** Start-up deadline once the binary is built (default 60 s). */
  timeoutMs?: number;
  /** Deadline of test/k8s/build-traefik.sh (default 30 min: a cold build takes several minutes). */
  buildTimeoutMs?: number;
}

/** One line of Traefik's JSON access log (the fields the tests read). */
export interface AccessLogEntry {
  RequestMethod: string;
  RequestPath: string;
  DownstreamStatus: number;
  RouterName?: string;
  ServiceName?: string;
  ServiceURL?: string;
  RequestContentSize?: number;
}

interface Router {
  name: string;
  provider: string;
  rule: string;
  service: string;
  status: string;
}

export interface IngressController {
  /** "traefik" and the version the binary reports (v3.7.13). */
  name: 'traefik';
  version: string;
  /** The HTTP entry point: http://<host>:<port>, what kind's http://localhost/ is. */
  url: string;
  host: string;
  port: number;
  /** The IngressClass it serves (created by the harness, controller traefik.io/ingress-controller). */
  ingressClass: string;
  /** Traefik's API, dashboard and /ping (127.0.0.1 only). */
  apiURL: string;
  /** Folder with the kubeconfig, traefik.log and access.log (inside the control plane's). */
  dir: string;
  /** Milliseconds from the call until Traefik answered /ping (the build check included). */
  startupMs: number;
  timings: Record<string, number>;
  /** Waits until Traefik routes every path of that Ingress (a router per path, enabled). */
  waitForIngress(namespace: string, name: string, timeoutMs?: number): Promise<void>;
  /** The access log so far: one entry per request Traefik answered. */
  accessLog(): AccessLogEntry[];
  /** Stops Traefik and removes its files and cluster-wide objects (IngressClass, RBAC). Idempotent. */
  stop(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------

let binPromise: Promise<string> | undefined;

/** The built traefik binary; runs test/k8s/build-traefik.sh (a no-op when built). TRAEFIK_BIN overrides. */
function ensureTraefik(timeoutMs: number): Promise<string> {
  if (process.env.TRAEFIK_BIN) return Promise.resolve(process.env.TRAEFIK_BIN);
  binPromise ??= new Promise<string>((resolve, reject) => {
    const child = spawn(join(here, 'build-traefik.sh'), [], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      const dir = out.trim().split('\n').pop() ?? '';
      if (code === 0 && dir) resolve(join(dir, 'traefik'));
      else reject(new Error(`test/k8s/build-traefik.sh failed (${signal ?? `exit ${code}`}); run it to see why`));
    });
  });
  binPromise.catch(() => (binPromise = undefined));
  return binPromise;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const sq = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

function tail(path: string, lines = 30): string {
  try {
    return readFileSync(path, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/**
 * The objects the controller needs: its namespace and ServiceAccount, the ClusterRole Traefik's
 * documentation gives its Kubernetes Ingress provider (services, secrets, EndpointSlices,
 * Ingresses and IngressClasses to read; Ingress status to write; and nodes to read, which the
 * Ingress reference page's example leaves out but Traefik's v3.1 migration notes add for NodePort
 * load-balancing: without it the provider waits forever for its node cache and routes nothing)
 * bound to it, and the IngressClass.
 */
function clusterObjects(ingressClass: string): unknown[] {
  return [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: TRAEFIK_NAMESPACE } },
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: SERVICE_ACCOUNT, namespace: TRAEFIK_NAMESPACE } },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: { name: CLUSTER_ROLE },
      rules: [
        { apiGroups: [''], resources: ['services', 'secrets', 'nodes'], verbs: ['get', 'list', 'watch'] },
        { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['get', 'list', 'watch'] },
        { apiGroups: ['extensions', 'networking.k8s.io'], resources: ['ingresses', 'ingressclasses'], verbs: ['get', 'list', 'watch'] },
        { apiGroups: ['extensions', 'networking.k8s.io'], resources: ['ingresses/status'], verbs: ['update'] },
      ],
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: CLUSTER_ROLE },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: CLUSTER_ROLE },
      subjects: [{ kind: 'ServiceAccount', name: SERVICE_ACCOUNT, namespace: TRAEFIK_NAMESPACE }],
    },
    { apiVersion: 'networking.k8s.io/v1', kind: 'IngressClass', metadata: { name: ingressClass }, spec: { controller: TRAEFIK_CONTROLLER } },
  ];
}

class TraefikController implements IngressController {
  readonly name = 'traefik' as const;
  version = '';
  url = '';
  host: string;
  port = 0;
  ingressClass: string;
  apiURL = '';
  dir: string;
  startupMs = 0;
  timings: Record<string, number> = {};

  private cp: ControlPlane;
  private opts: IngressControllerOptions;
  private log: boolean;
  private hookPath: string;
  private child?: ChildProcess;
  private exitCode?: number | null;
  private exited?: Promise<void>;
  private stopping?: Promise<void>;
  private bin = '';

  constructor(cp: ControlPlane, opts: IngressControllerOptions) {
    this.cp = cp;
    this.opts = opts;
    this.host = opts.host ?? '127.0.0.1';
    this.ingressClass = opts.ingressClass ?? INGRESS_CLASS;
    this.log = opts.log ?? process.env.K8S_TEST_LOG === '1';
    this.dir = join(cp.dir, `ingress-traefik-${this.ingressClass}`);
    this.hookPath = join(cp.dir, 'cleanup.d', `40-ingress-traefik-${this.ingressClass}.sh`);
  }

  private path(name: string): string {
    return join(this.dir, name);
  }

  private async phase<T>(name: string, fn: () => Promise<T> | T): Promise<T> {
    const t0 = performance.now();
    const r = await fn();
    this.timings[name] = Math.round(performance.now() - t0);
    if (this.log) process.stderr.write(`[ingress] ${name}: ${this.timings[name]} ms\n`);
    return r;
  }

  async start(): Promise<void> {
    const t0 = performance.now();
    const timeoutMs = this.opts.timeoutMs ?? 60_000;
    this.bin = await this.phase('build', () => ensureTraefik(this.opts.buildTimeoutMs ?? 30 * 60_000));
    const version = spawnSync(this.bin, ['version'], { encoding: 'utf8', timeout: 10_000 });
    this.version = /Version:\s*(\S+)/.exec(version.stdout)?.[1] ?? 'unknown';
    mkdirSync(this.dir, { recursive: true });
    // The clean-up, hooked into the control plane's stop, exit handler and SIGKILL watchdog.
    mkdirSync(dirname(this.hookPath), { recursive: true });
    writeFileSync(this.path('cleanup.sh'), this.cleanupScript(), { mode: 0o755 });
    writeFileSync(this.hookPath, `exec sh ${sq(this.path('cleanup.sh'))}\n`, { mode: 0o755 });

    const kubeconfig = await this.phase('cluster objects', async () => {
      const input = clusterObjects(this.ingressClass)
        .map((o) => JSON.stringify(o))
        .join('\n');
      const r = await this.cp.kubectl(['apply', '--server-side', '--field-manager=ingress-harness', '-f', '-'], { input });
      if (r.code !== 0) throw new Error(`kubectl apply (Traefik's RBAC and IngressClass) failed: ${r.stderr}`);
      // A bound token of the ServiceAccount: Traefik reads the cluster as that account, nothing more.
      return this.cp.serviceAccountKubeConfig(TRAEFIK_NAMESPACE, SERVICE_ACCOUNT, 24 * 3600);
    });
    await this.phase('traefik', async () => {
      // Free ports are found, then bound by Traefik: retried in the rare case another process took one.
      for (let attempt = 1; ; attempt++) {
        const [web, api] = await freePorts(2);
        this.spawn(kubeconfig.path, web, api);
        try {
          await this.waitReady(`Traefik on ${this.host}:${web}`, async () => (await httpGet(`${this.apiURL}/ping`)).status === 200, timeoutMs);
          break;
        } catch (err) {
          if (attempt >= 3 || !tail(this.path('traefik.log')).includes('address already in use')) throw err;
          await this.kill();
        }
      }
      // Its configuration names the Kubernetes Ingress provider (that the provider reads the
      // cluster shows in waitForIngress, or as errors in traefik.log).
      await this.waitReady(
        "Traefik's Kubernetes Ingress provider in its configuration",
        async () => {
          const r = await httpGet(`${this.apiURL}/api/overview`);
          return r.status === 200 && (JSON.parse(r.body) as { providers?: string[] }).providers?.includes('KubernetesIngress') === true;
        },
        timeoutMs,
      );
    });
    this.startupMs = Math.round(performance.now() - t0);
  }

  private spawn(kubeconfig: string, web: number, api: number): void {
    this.port = web;
    this.url = `http://${this.host}:${web}`;
    this.apiURL = `http://127.0.0.1:${api}`;
    const args = [
      '--global.checkNewVersion=false',
      '--global.sendAnonymousUsage=false',
      `--entryPoints.web.address=${this.host}:${web}`,
      `--entryPoints.traefik.address=127.0.0.1:${api}`,
      // Stop in moments, not the default 10 s wait for idle connections.
      '--entryPoints.web.transport.lifeCycle.graceTimeOut=1s',
      '--entryPoints.traefik.transport.lifeCycle.graceTimeOut=1s',
      '--ping=true',
      '--api=true',
      '--api.insecure=true',
      // The dashboard's web UI is a separate (npm) build that the Go module does not carry.
      '--api.dashboard=false',
      '--providers.kubernetesingress=true',
      `--providers.kubernetesingress.ingressClass=${this.ingressClass}`,
      // What `kubectl get ingress` shows as its ADDRESS (Traefik writes it with ingresses/status).
      `--providers.kubernetesingress.ingressEndpoint.ip=${this.host}`,
      '--providers.providersThrottleDuration=500ms',
      '--log.level=INFO',
      '--accessLog=true',
      `--accessLog.filePath=${this.path('access.log')}`,
      '--accessLog.format=json',
    ];
    const logPath = this.path('traefik.log');
    const fd = openSync(logPath, 'a');
    // No in-cluster variables: Traefik then takes the cluster from KUBECONFIG.
    const { KUBERNETES_SERVICE_HOST: _h, KUBERNETES_SERVICE_PORT: _p, ...env } = process.env;
    const child = spawn(this.bin, args, {
      cwd: this.dir,
      detached: true, // own process group: Ctrl-C reaches the test, which stops it in order
      stdio: ['ignore', this.log ? 'pipe' : fd, this.log ? 'pipe' : fd],
      env: { ...env, HOME: this.dir, KUBECONFIG: kubeconfig },
    });
    closeSync(fd);
    if (this.log) {
      for (const stream of [child.stdout, child.stderr]) {
        stream?.setEncoding('utf8').on('data', (d: string) => {
          appendFileSync(logPath, d);
          for (const l of d.trimEnd().split('\n')) process.stderr.write(`[traefik] ${l}\n`);
        });
      }
    }
    this.child = child;
    this.exitCode = undefined;
    this.exited = new Promise((resolve) => {
      child.on('exit', (code, signal) => {
        this.exitCode = code ?? (signal ? -1 : null);
        resolve();
      });
      child.on('error', (err) => {
        appendFileSync(logPath, `spawn error: ${err.message}\n`);
        this.exitCode = -1;
        resolve();
      });
    });
    writeFileSync(this.path('pid'), `${child.pid ?? ''}\n`);
  }

  /** Polls `check`; fails fast when Traefik exits, or at the deadline, with its log. */
  private async waitReady(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let lastErr = '';
    for (let delay = 50; ; delay = Math.min(delay * 2, 500)) {
      if (this.exitCode !== undefined) {
        throw new Error(`traefik exited (code ${this.exitCode}) while waiting for ${what}; last log lines:\n${tail(this.path('traefik.log'))}`);
      }
      try {
        if (await check()) return;
      } catch (err) {
        lastErr = (err as Error).message;
      }
      if (Date.now() > deadline) {
        throw new Error(
          `timed out after ${timeoutMs} ms waiting for ${what}${lastErr ? ` (last error: ${lastErr})` : ''}\nlast traefik log lines:\n${tail(this.path('traefik.log'))}`,
        );
      }
      await sleep(delay);
    }
  }

  async waitForIngress(namespace: string, name: string, timeoutMs = 60_000): Promise<void> {
    const r = await this.cp.kubectl(['get', 'ingress', name, '-n', namespace, '-o', 'json']);
    if (r.code !== 0) throw new Error(`kubectl get ingress ${namespace}/${name}: ${r.stderr}`);
    const ingress = JSON.parse(r.stdout) as { spec: { ingressClassName?: string; rules?: { http?: { paths: { path?: string }[] } }[] } };
    if (ingress.spec.ingressClassName !== this.ingressClass) {
      throw new Error(`Ingress ${namespace}/${name} has ingressClassName ${ingress.spec.ingressClassName}; this controller serves ${this.ingressClass}`);
    }
    const paths = (ingress.spec.rules ?? []).flatMap((rule) => (rule.http?.paths ?? []).map((p) => p.path ?? '/'));
    // Traefik names an Ingress's routers <namespace>-<name>-<host>-<path> and writes each path
    // into its rule: one enabled router per path, or the Ingress is not (yet) served (no endpoints).
    let missing: string[] = paths;
    await this.waitReady(
      `Traefik routing Ingress ${namespace}/${name}`,
      async () => {
        const res = await httpGet(`${this.apiURL}/api/http/routers`);
        if (res.status !== 200) return false;
        const routers = (JSON.parse(res.body) as Router[]).filter(
          (x) => x.provider === 'kubernetes' && x.name.startsWith(`${namespace}-${name}-`) && x.status === 'enabled',
        );
        // The rule quotes the path with "" (an Ingress's) or `` (a rule written by hand).
        missing = paths.filter((p) => !routers.some((x) => x.rule.includes(`"${p}"`) || x.rule.includes(`\`${p}\``)));
        return missing.length === 0;
      },
      timeoutMs,
    ).catch((err: Error) => {
      throw new Error(`${err.message}\nno router yet for: ${missing.join(', ')}`);
    });
  }

  accessLog(): AccessLogEntry[] {
    if (!existsSync(this.path('access.log'))) return [];
    return readFileSync(this.path('access.log'), 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as AccessLogEntry);
  }

  private async kill(): Promise<void> {
    const child = this.child;
    if (!child?.pid || this.exitCode !== undefined) return;
    try {
      process.kill(child.pid, 'SIGTERM');
    } catch {
      /* gone */
    }
    const killed = await Promise.race([this.exited?.then(() => true), sleep(5000).then(() => false)]);
    if (!killed) {
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
      await this.exited;
    }
  }

  /** POSIX sh: stops this Traefik (by its pid, only if it still runs our binary) and removes its folder. */
  private cleanupScript(): string {
    return `#!/bin/sh
# Written by test/k8s/ingress.ts: stops the Traefik of IngressClass "${this.ingressClass}" and removes
# its files. Idempotent. Run by IngressController.stop() and, through ${this.hookPath},
# by the control plane's stop(), exit handler and watchdog (after a SIGKILL).
dir=${sq(this.dir)}
bin=${sq(this.bin)}
hook=${sq(this.hookPath)}
pid=$(cat "$dir/pid" 2>/dev/null)
ours() { [ -n "$pid" ] && grep -qaF "$bin" "/proc/$pid/cmdline" 2>/dev/null; }
if ours; then
  kill -TERM "$pid" 2>/dev/null
  i=0
  while ours && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
  ours && kill -KILL "$pid" 2>/dev/null
fi
rm -rf "$dir"
rm -f "$hook"
exit 0
`;
  }

  stop(): Promise<void> {
    this.stopping ??= (async () => {
      await this.kill();
      const script = this.path('cleanup.sh');
      if (existsSync(script)) spawnSync('sh', [script], { stdio: 'ignore', timeout: 30_000 });
      rmSync(this.hookPath, { force: true });
      rmSync(this.dir, { recursive: true, force: true });
      // The control plane may go on (another controller, another test): take back the cluster-wide
      // objects start() made. The namespace and its ServiceAccount stay, so that a new start does
      // not meet a namespace still terminating.
      const names = [`ingressclass/${this.ingressClass}`, `clusterrolebinding/${CLUSTER_ROLE}`, `clusterrole/${CLUSTER_ROLE}`];
      await this.cp.kubectl(['delete', ...names, '--ignore-not-found', '--wait=false'], { timeoutMs: 10_000 }).catch(() => {});
    })();
    return this.stopping;
  }
}

/**
 * Starts Traefik next to a running control plane (with `controllers: true`, so that Services get
 * EndpointSlices; a real node, so that they point at reachable pods): creates its RBAC and the
 * IngressClass, builds the binary when needed, and waits until it answers on its ports.
 */
export async function startIngressController(cp: ControlPlane, opts: IngressControllerOptions = {}): Promise<IngressController> {
  const controller = new TraefikController(cp, opts);
  try {
    await controller.start();
  } catch (err) {
    if (process.env.K8S_KEEP_TMP) {
      const kept = `${controller.dir}.failed`;
      mkdirSync(kept, { recursive: true });
      for (const f of ['traefik.log', 'access.log'])
        if (existsSync(join(controller.dir, f))) appendFileSync(join(kept, f), readFileSync(join(controller.dir, f)));
      process.stderr.write(`[ingress] start failed; logs copied to ${kept}\n`);
    }
    await controller.stop();
    throw err;
  }
  return controller;
}
