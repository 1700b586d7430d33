import { V1MicroTime } from '@kubernetes/client-node';
import type { V1Lease } from '@kubernetes/client-node';
import { describeError, isConflict, isNotFound } from '../../contract/kubernetes-errors.ts';
import type { KubeClient } from './kube-client.ts';
import type { Logger } from './log.ts';
import type { OperatorMetrics } from './metrics.ts';

// Leader election on a coordination.k8s.io Lease, as client-go's leaderelection package does it:
// - a candidate tries every retry period; it takes the Lease when nobody holds it, or when the
//   holder has not renewed it for a lease duration *as observed on the candidate's own clock*
//   (the Lease's resourceVersion last changing), so clocks need not agree;
// - every write is an update with the resourceVersion read, so two candidates cannot both win;
// - the leader renews every retry period; if it cannot for the renew deadline it stops leading
//   (the operator then exits, as controller-runtime does, and its Deployment restarts it);
// - on a clean shutdown the leader releases the Lease, so a standby takes over at once.
// Written here: no npm package does Lease election correctly on client-node 2.x.

export interface LeaderElectionOptions {
  kube: KubeClient;
  namespace: string;
  name: string;
  identity: string;
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
  log: Logger;
  metrics?: OperatorMetrics;
  onStartedLeading(): void;
  onStoppedLeading(): void;
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener(
      'abort',
      () => {
        clearTimeout(t);
        resolve();
      },
      { once: true },
    );
  });

export class LeaderElector {
  private readonly o: LeaderElectionOptions;
  private readonly log: Logger;
  private readonly abort = new AbortController();
  private leading = false;
  private observedVersion = '';
  private observedAt = 0;
  private lease?: V1Lease;
  private loop?: Promise<void>;

  constructor(opts: LeaderElectionOptions) {
    this.o = opts;
    this.log = opts.log.child('leader-election', { lease: `${opts.namespace}/${opts.name}`, identity: opts.identity });
    opts.metrics?.leader.set({ name: opts.name }, 0);
  }

  isLeader(): boolean {
    return this.leading;
  }

  /** Campaigns until stopped: acquires, then renews; calls back on each change of leadership. */
  start(): void {
    this.loop ??= this.run();
  }

  private async run(): Promise<void> {
    const signal = this.abort.signal;
    this.log.info('campaigning for the lease');
    while (!signal.aborted) {
      // Acquire.
      while (!signal.aborted && !(await this.tryAcquireOrRenew())) {
        await sleep(this.o.retryPeriodMs * (1 + Math.random() * 0.2), signal);
      }
      if (signal.aborted) return;
      this.setLeading(true);
      // Renew until the deadline passes without a renewal.
      let renewed = Date.now();
      while (!signal.aborted) {
        await sleep(this.o.retryPeriodMs, signal);
        if (signal.aborted) return;
        if (await this.tryAcquireOrRenew()) renewed = Date.now();
        else if (Date.now() - renewed > this.o.renewDeadlineMs) break;
      }
      if (signal.aborted) return;
      this.log.error('lost the lease: could not renew it within the renew deadline', { renewDeadlineMs: this.o.renewDeadlineMs });
      this.setLeading(false);
    }
  }

  private setLeading(leading: boolean): void {
    if (this.leading === leading) return;
    this.leading = leading;
    this.o.metrics?.leader.set({ name: this.o.name }, leading ? 1 : 0);
    if (leading) {
      this.log.info('acquired the lease: leading');
      this.o.onStartedLeading();
    } else {
      this.o.onStoppedLeading();
    }
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const { kube, namespace, name, identity } = this.o;
    const now = new V1MicroTime();
    const durationSeconds = Math.max(1, Math.round(this.o.leaseDurationMs / 1000));
    let lease: V1Lease;
    try {
      lease = await kube.coordination.readNamespacedLease({ name, namespace });
    } catch (err) {
      if (!isNotFound(err)) {
        this.log.info('could not read the lease', { error: describeError(err) });
        return false;
      }
      try {
        this.lease = await kube.coordination.createNamespacedLease({
          namespace,
          body: {
            metadata: { name, namespace },
            spec: { holderIdentity: identity, leaseDurationSeconds: durationSeconds, acquireTime: now, renewTime: now, leaseTransitions: 0 },
          },
        });
        this.observe(this.lease);
        return true;
      } catch (e) {
        this.log.info('could not create the lease', { error: describeError(e) });
        return false;
      }
    }
    this.observe(lease);
    const spec = lease.spec ?? {};
    const holder = spec.holderIdentity ?? '';
    const heldByOther = holder !== '' && holder !== identity;
    const observedDurationMs = (spec.leaseDurationSeconds ?? durationSeconds) * 1000;
    if (heldByOther && Date.now() < this.observedAt + observedDurationMs) return false;
    const mine = holder === identity;
    lease.spec = {
      holderIdentity: identity,
      leaseDurationSeconds: durationSeconds,
      acquireTime: mine && spec.acquireTime ? spec.acquireTime : now,
      renewTime: now,
      leaseTransitions: (spec.leaseTransitions ?? 0) + (mine ? 0 : 1),
    };
    try {
      this.lease = await kube.coordination.replaceNamespacedLease({ name, namespace, body: lease });
      this.observe(this.lease);
      if (!mine)
        this.log.info(holder ? 'took over the lease from a holder that stopped renewing it' : 'took the free lease', { previous: holder || undefined });
      return true;
    } catch (err) {
      if (!isConflict(err)) this.log.info('could not update the lease', { error: describeError(err) });
      return false;
    }
  }

  private observe(lease: V1Lease): void {
    const version = lease.metadata?.resourceVersion ?? '';
    if (version !== this.observedVersion) {
      this.observedVersion = version;
      this.observedAt = Date.now();
    }
  }

  /** Stops campaigning; a leader releases the Lease so a standby need not wait for it to expire. */
  async stop(): Promise<void> {
    this.abort.abort();
    await this.loop;
    if (!this.leading || !this.lease) return;
    this.leading = false;
    this.o.metrics?.leader.set({ name: this.o.name }, 0);
    const now = new V1MicroTime();
    try {
      await this.o.kube.coordination.replaceNamespacedLease({
        name: this.o.name,
        namespace: this.o.namespace,
        body: { ...this.lease, spec: { ...this.lease.spec, holderIdentity: '', leaseDurationSeconds: 1, renewTime: now, acquireTime: now } },
      });
      this.log.info('released the lease');
    } catch (err) {
      this.log.warn('could not release the lease; a standby takes over when it expires', { error: describeError(err) });
    }
  }
}
