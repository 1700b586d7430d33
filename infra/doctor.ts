import { accessSync, constants, existsSync, readFileSync, statSync } from 'node:fs';
import { delimiter, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { manifestFiles } from './app.ts';
import { figures } from '../contract/figures.ts';
import { clusterNeed, wslconfigFigures, type Amount, type ClusterNeed } from './capacity.ts';
import { IMAGE_UID, KIND_CLUSTER } from './names.ts';

// `make doctor`: is this WSL2 machine ready for `make cluster`? Each check reads /proc and /sys
// under a root folder (tests pass a fake one), and each failure says how to fix it.

export type Status = 'ok' | 'warn' | 'fail';

export interface Check {
  title: string;
  status: Status;
  detail: string;
  fix?: string;
}

export interface DoctorOptions {
  /** Where /proc, /sys, /etc and /var/run are (default /). */
  root?: string;
  /** PATH and HOME are read from here (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** The project folder (default the current directory). */
  projectDir?: string;
  /** What the cluster needs (default: computed from the manifests). */
  need?: ClusterNeed;
}

export const INOTIFY_MIN = { max_user_watches: 524288, max_user_instances: 512 } as const;

const GiB = 2 ** 30;
const gib = (bytes: number) => `${(bytes / GiB).toFixed(1)} GiB`;
const WSLCONFIG = 'in %UserProfile%\\.wslconfig on Windows, section [wsl2]';
const RESTART_WSL = 'then run `wsl --shutdown` in PowerShell and open the distribution again';

function read(root: string, path: string): string | undefined {
  try {
    return readFileSync(join(root, path), 'utf8');
  } catch {
    return undefined;
  }
}

function onPath(command: string, env: NodeJS.ProcessEnv): string | undefined {
  for (const dir of (env.PATH ?? '').split(delimiter).filter(Boolean)) {
    const p = join(dir, command);
    try {
      accessSync(p, constants.X_OK);
      if (statSync(p).isFile()) return p;
    } catch {
      /* not here */
    }
  }
  return undefined;
}

function kernel(root: string): Check {
  const version = read(root, 'proc/version')?.trim();
  const title = 'WSL2 kernel';
  if (!version) return { title, status: 'fail', detail: 'cannot read /proc/version' };
  const release = version.split(/\s+/)[2] ?? version;
  if (/microsoft/i.test(version) && /wsl2/i.test(version)) return { title, status: 'ok', detail: release };
  if (/microsoft/i.test(version)) {
    return {
      title,
      status: 'fail',
      detail: `${release}: this is WSL 1, which cannot run Docker or kind`,
      fix: 'in PowerShell: `wsl --set-version <distribution> 2` (and `wsl --set-default-version 2`)',
    };
  }
  return { title, status: 'warn', detail: `${release}: not WSL2 (/proc/version does not mention microsoft); the other checks still apply` };
}

function cgroupV2(root: string): Check {
  const title = 'cgroup v2';
  const controllers = read(root, 'sys/fs/cgroup/cgroup.controllers');
  if (controllers !== undefined) return { title, status: 'ok', detail: `unified hierarchy (${controllers.trim().split(/\s+/).join(' ')})` };
  return {
    title,
    status: 'fail',
    detail: '/sys/fs/cgroup is not the cgroup v2 unified hierarchy',
    fix: `set \`kernelCommandLine = cgroup_no_v1=all\` ${WSLCONFIG}, ${RESTART_WSL}`,
  };
}

function countCpus(root: string): number | undefined {
  const cpuinfo = read(root, 'proc/cpuinfo');
  if (cpuinfo === undefined) return undefined;
  return cpuinfo.split('\n').filter((l) => /^processor\s*:/.test(l)).length;
}

function meminfo(root: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of (read(root, 'proc/meminfo') ?? '').split('\n')) {
    const m = /^(\w+):\s+(\d+)\s*kB/.exec(line);
    if (m) out[m[1]] = Number(m[2]) * 1024;
  }
  return out;
}

function capacity(
  title: string,
  have: number | undefined,
  need: ClusterNeed,
  pick: (a: Amount) => number,
  show: (n: number) => string,
  setting: (a: Amount) => string,
): Check {
  if (have === undefined) return { title, status: 'fail', detail: 'cannot read it from /proc' };
  const steady = pick(need.steady);
  const rollout = pick(need.rollout);
  if (have >= rollout) return { title, status: 'ok', detail: `${show(have)} (the cluster requests ${show(rollout)} during a rollout)` };
  if (have >= steady) {
    return {
      title,
      status: 'warn',
      detail: `${show(have)}: enough for everything running (${show(steady)}), not for a rolling update of analytics-api (${show(rollout)}): new pods would wait`,
      fix: `set \`${setting(need.rollout)}\` ${WSLCONFIG}, ${RESTART_WSL}; or run one replica: kubectl -n analytics scale deployment/analytics-api --replicas=1`,
    };
  }
  return {
    title,
    status: 'fail',
    detail: `${show(have)} < ${show(steady)}: each analytics-api replica requests ${figures.resources.requests.cpu} cores and ${figures.resources.requests.memoryGiB} GiB, plus Redis, the operator and kind's own pods`,
    fix: `set \`${setting(need.rollout)}\` (at least \`${setting(need.steady)}\`) ${WSLCONFIG}, ${RESTART_WSL}`,
  };
}

function swap(root: string): Check {
  const total = meminfo(root).SwapTotal;
  const title = 'swap';
  if (total === undefined) return { title, status: 'warn', detail: 'cannot read SwapTotal from /proc/meminfo' };
  if (total > 0) return { title, status: 'ok', detail: gib(total) };
  return { title, status: 'warn', detail: 'no swap: a memory spike kills a pod instead of slowing it', fix: `set \`swap=4GB\` ${WSLCONFIG}, ${RESTART_WSL}` };
}

function inotify(root: string, key: keyof typeof INOTIFY_MIN): Check {
  const title = `inotify ${key}`;
  const min = INOTIFY_MIN[key];
  const text = read(root, `proc/sys/fs/inotify/${key}`);
  const fix = `sudo sysctl -w fs.inotify.${key}=${min} && echo fs.inotify.${key}=${min} | sudo tee /etc/sysctl.d/90-analytics-inotify.conf`;
  if (text === undefined) return { title, status: 'fail', detail: `cannot read /proc/sys/fs/inotify/${key}`, fix };
  const value = Number(text.trim());
  if (value >= min) return { title, status: 'ok', detail: String(value) };
  const symptom = key === 'max_user_watches' ? 'no space left on device' : 'too many open files';
  return { title, status: 'fail', detail: `${value} < ${min}: kind's node, its pods and file watchers run out ("${symptom}")`, fix };
}

function command(name: string, env: NodeJS.ProcessEnv, fix: string): Check {
  const path = onPath(name, env);
  return path ? { title: name, status: 'ok', detail: path } : { title: name, status: 'fail', detail: 'not found on PATH', fix };
}

function dockerDaemon(root: string): Check {
  const title = 'docker daemon';
  if (existsSync(join(root, 'var/run/docker.sock'))) return { title, status: 'ok', detail: '/var/run/docker.sock' };
  const systemd = /^\s*systemd\s*=\s*true\s*$/im.test(read(root, 'etc/wsl.conf') ?? '');
  return {
    title,
    status: 'fail',
    detail: 'no /var/run/docker.sock: Docker is not running',
    fix: systemd
      ? "sudo systemctl enable --now docker (or turn on Docker Desktop's WSL integration for this distribution)"
      : 'enable systemd in WSL2: add `[boot]` and `systemd=true` to /etc/wsl.conf, ' +
        RESTART_WSL +
        "; then `sudo systemctl enable --now docker` (or turn on Docker Desktop's WSL integration)",
  };
}

const onWindowsDrive = (p: string) => /^\/mnt\/[a-z](\/|$)/i.test(p);

function projectLocation(projectDir: string): Check {
  const title = 'project folder';
  if (!onWindowsDrive(projectDir)) return { title, status: 'ok', detail: `${projectDir} (Linux filesystem)` };
  return {
    title,
    status: 'fail',
    detail: `${projectDir} is on a Windows drive: reached over 9p, many times slower, and file watching (inotify) does not work there`,
    fix: 'clone the project into your Linux home (e.g. `git clone <repo> ~/analytics-api`) and run make there',
  };
}

function hostFolder(name: string, env: NodeJS.ProcessEnv): Check {
  const home = env.HOME ?? '';
  const dir = join(home, name);
  const title = `~/${name}`;
  if (!home) return { title, status: 'warn', detail: 'HOME is not set' };
  if (onWindowsDrive(dir)) {
    return { title, status: 'fail', detail: `${dir} is on a Windows drive`, fix: `use a Linux home folder (ext4): kind-config.yaml mounts \${HOME}/${name}` };
  }
  let st;
  try {
    st = statSync(dir);
  } catch {
    return { title, status: 'ok', detail: `${dir} will be created by make cluster` };
  }
  const writable = (st.uid === IMAGE_UID && (st.mode & 0o200) !== 0) || (st.mode & 0o002) !== 0;
  if (writable) return { title, status: 'ok', detail: `${dir} (writable by uid ${IMAGE_UID}, the pods' user)` };
  return {
    title,
    status: 'fail',
    detail: `${dir} belongs to uid ${st.uid}: the pods run as uid ${IMAGE_UID} and cannot write it`,
    fix: `sudo chown -R ${IMAGE_UID}:${IMAGE_UID} ${dir}`,
  };
}

/** Listening TCP ports from /proc/net/tcp and tcp6. */
function listeningPorts(root: string): Set<number> {
  const ports = new Set<number>();
  for (const file of ['proc/net/tcp', 'proc/net/tcp6']) {
    for (const line of (read(root, file) ?? '').split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length > 3 && cols[3] === '0A') ports.add(parseInt(cols[1].split(':').pop() ?? '', 16));
    }
  }
  return ports;
}

function hostPorts(root: string): Check {
  const title = 'ports 80 and 443';
  const busy = [80, 443].filter((p) => listeningPorts(root).has(p));
  if (busy.length === 0) return { title, status: 'ok', detail: 'free for the ingress' };
  return {
    title,
    status: 'warn',
    detail: `${busy.join(' and ')} already listening: fine if it is the kind cluster \`${KIND_CLUSTER}\` (make cluster was run), else make cluster fails to map them`,
    fix: `see who listens: sudo ss -ltnp 'sport = :${busy[0]}'`,
  };
}

export function runDoctor(opts: DoctorOptions = {}): Check[] {
  const root = opts.root ?? '/';
  const env = opts.env ?? process.env;
  const need = opts.need ?? clusterNeed(manifestFiles().flatMap((f) => f.objects));
  const mem = meminfo(root);
  const cores = (n: number) => `${Number.isInteger(n) ? n : n.toFixed(2)} CPUs`;
  return [
    kernel(root),
    cgroupV2(root),
    capacity(
      'CPUs',
      countCpus(root),
      need,
      (a) => a.cpu,
      cores,
      (a) => `processors=${wslconfigFigures(a).processors}`,
    ),
    capacity(
      'memory',
      mem.MemTotal,
      need,
      (a) => a.memoryBytes,
      gib,
      (a) => `memory=${wslconfigFigures(a).memoryGB}GB`,
    ),
    swap(root),
    inotify(root, 'max_user_watches'),
    inotify(root, 'max_user_instances'),
    command('docker', env, "install Docker Engine in the distribution (https://docs.docker.com/engine/install/) or turn on Docker Desktop's WSL integration"),
    dockerDaemon(root),
    command('kind', env, 'install kind: https://kind.sigs.k8s.io/docs/user/quick-start/#installation'),
    command('kubectl', env, 'install kubectl: https://kubernetes.io/docs/tasks/tools/install-kubectl-linux/'),
    // make cluster installs Traefik with its Helm chart.
    command('helm', env, 'install Helm: https://helm.sh/docs/intro/install/'),
    projectLocation(resolve(opts.projectDir ?? process.cwd())),
    hostFolder('analytics-models', env),
    hostFolder('analytics-backups', env),
    hostPorts(root),
  ];
}

export function formatReport(checks: Check[]): string {
  const width = Math.max(...checks.map((c) => c.title.length));
  const lines = checks.map((c) => {
    const head = `${c.status === 'fail' ? 'FAIL' : c.status.padEnd(4)}  ${c.title.padEnd(width)}  ${c.detail}`;
    return c.fix && c.status !== 'ok' ? `${head}\n${' '.repeat(width + 8)}fix: ${c.fix}` : head;
  });
  const failed = checks.filter((c) => c.status === 'fail').length;
  const warned = checks.filter((c) => c.status === 'warn').length;
  lines.push(failed ? `${failed} check(s) failed: fix them, then run make doctor again` : `ready for make cluster${warned ? ` (${warned} warning(s))` : ''}`);
  return lines.join('\n');
}

if (import.meta.main) {
  const { values } = parseArgs({ options: { root: { type: 'string', default: '/' }, project: { type: 'string' } } });
  const checks = runDoctor({ root: values.root, projectDir: values.project });
  console.log(formatReport(checks));
  process.exitCode = checks.some((c) => c.status === 'fail') ? 1 : 0;
}
