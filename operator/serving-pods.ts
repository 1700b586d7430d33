import type { V1EndpointSlice } from '@kubernetes/client-node';
import { z } from 'zod';
import { countersOf, parseMetrics, type Counters } from '../contract/rollout.ts';
import type { Informer } from './runtime/informer.ts';
import type { Logger } from './runtime/log.ts';

// Which version each ready service pod serves. The service's EndpointSlices name its ready pods;
// each pod's /health lists the versions it has loaded. The pods follow the routing ConfigMap by
// themselves and hot-swap in place, so this is how the operator knows a routing change has landed:
// a ModelVersion is Serving when every ready pod serves it. Polled quickly while a change is
// landing (hurry) and slowly otherwise, so a pod that drifts or restarts is noticed too.

export interface ServingPod {
  /** The pod's name (the endpoint's targetRef), or its address. */
  name: string;
  address: string;
  /** Model → the version the pod serves (loaded); undefined until the pod answered. */
  models: Map<string, string> | undefined;
  /** Model → the version it rolls out against that one (loaded), with its share or as a shadow. */
  canaries?: Map<string, { version: string; weight: number; mode: 'canary' | 'shadow' }>;
  port?: number;
  /** Why the last probe failed, if it did. */
  error?: string;
}

const Health = z.object({
  models: z.array(
    z.object({
      name: z.string(),
      version: z.string(),
      loaded: z.boolean(),
      canary: z.object({ version: z.string(), weight: z.number(), mode: z.enum(['canary', 'shadow']), loaded: z.boolean() }).optional(),
    }),
  ),
});

export interface ServingPodsOptions {
  endpointSlices: Informer<V1EndpointSlice>;
  log: Logger;
  fastMs?: number;
  slowMs?: number;
  timeoutMs?: number;
}

interface Endpoint {
  name: string;
  address: string;
  port: number;
}

export class ServingPods {
  private readonly o: ServingPodsOptions;
  private readonly log: Logger;
  private current = new Map<string, ServingPod>();
  private hurryUntil = 0;
  private timer?: NodeJS.Timeout;
  private stopped = true;
  private round?: Promise<void>;
  private readonly listeners: Array<(models: Set<string> | 'all') => void> = [];

  constructor(options: ServingPodsOptions) {
    this.o = options;
    this.log = options.log.child('serving-pods');
    options.endpointSlices.on({ add: () => this.hurry(), update: () => this.hurry(), delete: () => this.hurry() });
  }

  /** `fn` is called with the models whose serving pods or versions changed ('all' when the pods changed). */
  onChange(fn: (models: Set<string> | 'all') => void): void {
    this.listeners.push(fn);
  }

  /** The ready pods and what each serves, as last probed. */
  pods(): ServingPod[] {
    return [...this.current.values()];
  }

  /** Probe every second for the next minute: a routing change, or the pods changed. */
  hurry(): void {
    this.hurryUntil = Date.now() + 60_000;
    if (!this.stopped && this.round === undefined) this.schedule(0);
  }

  start(): void {
    this.stopped = false;
    this.schedule(0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.round;
  }

  private schedule(ms: number): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.round = this.probeAll().finally(() => {
        this.round = undefined;
        if (!this.stopped) this.schedule(Date.now() < this.hurryUntil ? (this.o.fastMs ?? 1_000) : (this.o.slowMs ?? 10_000));
      });
    }, ms);
    this.timer.unref();
  }

  private endpoints(): Endpoint[] {
    const out: Endpoint[] = [];
    for (const slice of this.o.endpointSlices.list()) {
      const port = slice.ports?.find((p) => p.name === 'http')?.port ?? slice.ports?.[0]?.port;
      if (!port) continue;
      for (const e of slice.endpoints ?? []) {
        if (e.conditions?.ready === false || e.conditions?.terminating === true) continue;
        const address = e.addresses[0];
        if (address) out.push({ name: e.targetRef?.name ?? address, address, port });
      }
    }
    return out;
  }

  private async probe(e: Endpoint): Promise<ServingPod> {
    const host = e.address.includes(':') ? `[${e.address}]` : e.address;
    try {
      const res = await fetch(`http://${host}:${e.port}/health`, { signal: AbortSignal.timeout(this.o.timeoutMs ?? 2_000) });
      const health = Health.parse(await res.json());
      const canaries = new Map(
        health.models.filter((m) => m.canary?.loaded).map((m) => [m.name, { version: m.canary!.version, weight: m.canary!.weight, mode: m.canary!.mode }]),
      );
      return {
        name: e.name,
        address: e.address,
        port: e.port,
        models: new Map(health.models.filter((m) => m.loaded).map((m) => [m.name, m.version])),
        canaries,
      };
    } catch (err) {
      const e2 = err as Error & { cause?: { code?: string } };
      return { name: e.name, address: e.address, models: undefined, error: e2.cause?.code ?? e2.message };
    }
  }

  /**
   * Each ready pod's counters of `versions` of `model`, read from its /metrics now (a rollout's
   * figures: the service's own metrics, no Prometheus needed). A pod that does not answer is left out.
   */
  async counters(model: string, versions: readonly string[]): Promise<Array<{ pod: string; counters: Map<string, Counters> }>> {
    const read = async (p: ServingPod) => {
      const host = p.address.includes(':') ? `[${p.address}]` : p.address;
      try {
        const res = await fetch(`http://${host}:${p.port}/metrics`, { signal: AbortSignal.timeout(this.o.timeoutMs ?? 2_000) });
        if (!res.ok) throw new Error(`HTTP ${res.status}`);
        const samples = parseMetrics(await res.text());
        return { pod: p.name, counters: new Map(versions.map((v) => [v, countersOf(samples, model, v)])) };
      } catch (err) {
        this.log.debug('a service pod did not answer /metrics', { pod: p.name, error: (err as Error).message });
        return undefined;
      }
    };
    const out = await Promise.all(
      this.pods()
        .filter((p) => p.port !== undefined)
        .map(read),
    );
    return out.filter((x) => x !== undefined);
  }

  private async probeAll(): Promise<void> {
    const next = new Map((await Promise.all(this.endpoints().map((e) => this.probe(e)))).map((p) => [p.name, p]));
    const changed = new Set<string>();
    const modelsOf = (p: ServingPod | undefined) => [...(p?.models?.keys() ?? [])];
    for (const name of new Set([...this.current.keys(), ...next.keys()])) {
      const before = this.current.get(name);
      const after = next.get(name);
      for (const model of new Set([...modelsOf(before), ...modelsOf(after)])) {
        const canary = (p: ServingPod | undefined) => JSON.stringify(p?.canaries?.get(model));
        if (before?.models?.get(model) !== after?.models?.get(model) || canary(before) !== canary(after)) changed.add(model);
      }
      if (before?.error !== after?.error && after?.error) this.log.debug('a service pod did not answer /health', { pod: name, error: after.error });
    }
    const podsChanged = next.size !== this.current.size || [...next.keys()].some((k) => !this.current.has(k));
    this.current = next;
    if (changed.size > 0 || podsChanged) for (const fn of this.listeners) fn(podsChanged ? 'all' : changed);
  }
}
