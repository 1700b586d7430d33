// What the manifests ask of a single-node cluster: the sum of the containers' requests (the
// scheduler's arithmetic), read from the synthesized objects, plus kind's own pods and the memory
// the node needs outside any pod. `make doctor` compares it with the WSL2 VM and docs/wsl2.md
// quotes it.

export interface Amount {
  cpu: number;
  memoryBytes: number;
}

export interface ClusterNeed {
  /** Everything running. */
  steady: Amount;
  /** During a rolling update of the largest workload (its surge pods run beside the old ones). */
  rollout: Amount;
}

/**
 * kind's pods (etcd, API server, controller manager, scheduler, two CoreDNS, kindnet: 0.95 core,
 * 290 MiB) and Traefik, the ingress controller (0.1 core, 128 MiB: infra/traefik-values.yaml), as
 * their manifests request them.
 */
const KIND_SYSTEM_REQUESTS: Amount = { cpu: 1.05, memoryBytes: (290 + 128) * 2 ** 20 };
/** The WSL2 kernel, dockerd, containerd and the kubelet: memory no pod request accounts for. */
const NODE_MEMORY_HEADROOM_BYTES = 1.5 * 2 ** 30;

const BINARY: Record<string, number> = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40 };
const DECIMAL: Record<string, number> = { m: 1e-3, '': 1, k: 1e3, M: 1e6, G: 1e9, T: 1e12 };

/** A Kubernetes quantity ("100m", "2", "4Gi", "128Mi", "1G") as a number. */
export function parseQuantity(q: string | number): number {
  if (typeof q === 'number') return q;
  const m = /^([0-9.]+)([A-Za-z]*)$/.exec(q.trim());
  if (!m) throw new Error(`not a quantity: ${q}`);
  const factor = BINARY[m[2]] ?? DECIMAL[m[2]];
  if (factor === undefined) throw new Error(`unknown quantity suffix in ${q}`);
  return Number(m[1]) * factor;
}

// biome-ignore lint/suspicious/noExplicitAny: synthesized manifests, read field by field
type Obj = Record<string, any>;

function podRequests(podSpec: Obj): Amount {
  let cpu = 0;
  let memoryBytes = 0;
  for (const c of podSpec.containers ?? []) {
    const r = c.resources?.requests ?? {};
    cpu += r.cpu !== undefined ? parseQuantity(r.cpu) : 0;
    memoryBytes += r.memory !== undefined ? parseQuantity(r.memory) : 0;
  }
  return { cpu, memoryBytes };
}

function surgePods(d: Obj, replicas: number): number {
  const strategy = d.spec?.strategy;
  if (strategy?.type === 'Recreate') return 0;
  const surge = strategy?.rollingUpdate?.maxSurge ?? '25%';
  if (typeof surge === 'number') return surge;
  const pct = /^(\d+)%$/.exec(String(surge));
  return pct ? Math.ceil((replicas * Number(pct[1])) / 100) : Number(surge);
}

/** The requests of the Deployments among `objects`, with kind's system pods and node headroom. */
export function clusterNeed(objects: Obj[]): ClusterNeed {
  const steady: Amount = { cpu: KIND_SYSTEM_REQUESTS.cpu, memoryBytes: KIND_SYSTEM_REQUESTS.memoryBytes + NODE_MEMORY_HEADROOM_BYTES };
  let surge: Amount = { cpu: 0, memoryBytes: 0 };
  for (const d of objects.filter((o) => o.kind === 'Deployment')) {
    const replicas = d.spec?.replicas ?? 1;
    const pod = podRequests(d.spec.template.spec);
    steady.cpu += replicas * pod.cpu;
    steady.memoryBytes += replicas * pod.memoryBytes;
    const extra = surgePods(d, replicas);
    if (extra * pod.memoryBytes > surge.memoryBytes) surge = { cpu: extra * pod.cpu, memoryBytes: extra * pod.memoryBytes };
  }
  return { steady, rollout: { cpu: steady.cpu + surge.cpu, memoryBytes: steady.memoryBytes + surge.memoryBytes } };
}

/**
 * .wslconfig figures for an amount: whole processors, and memory in GB (WSL2 reads GB as GiB)
 * rounded up to an even number with half a GiB spare, since the VM's kernel keeps a little of it.
 */
export function wslconfigFigures(a: Amount): { processors: number; memoryGB: number } {
  const gib = a.memoryBytes / 2 ** 30 + 0.5;
  return { processors: Math.ceil(a.cpu), memoryGB: 2 * Math.ceil(gib / 2) };
}
