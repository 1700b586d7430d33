import { randomBytes } from 'node:crypto';
import { PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import type { CoreV1Event } from '@kubernetes/client-node';
import { describeError } from '../../contract/kubernetes-errors.ts';
import type { KubeClient } from './kube-client.ts';
import type { Logger } from './log.ts';

// Kubernetes Events for what the operator does (`kubectl describe mv …`, `kubectl get events`), as
// client-go's EventRecorder writes them: a repeat of the same event on the same object raises the
// count of the existing Event instead of adding one. Best effort: a failed write is logged, never
// fails a reconcile.

export interface EventTarget {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; namespace?: string; uid?: string; resourceVersion?: string };
}

export type EventType = 'Normal' | 'Warning';

const MAX_REMEMBERED = 4096;

export class EventRecorder {
  private readonly kube: KubeClient;
  private readonly component: string;
  private readonly instance: string;
  private readonly log: Logger;
  private readonly seen = new Map<string, { name: string; namespace: string; count: number }>();
  private pending: Promise<void> = Promise.resolve();

  constructor(kube: KubeClient, component: string, instance: string, log: Logger) {
    this.kube = kube;
    this.component = component;
    this.instance = instance;
    this.log = log.child('events');
  }

  /** Records an event about `target` (queued; writes happen one at a time in order). */
  record(target: EventTarget, type: EventType, reason: string, message: string): void {
    const m = target.metadata ?? {};
    if (!m.name || !m.namespace) return;
    this.log.debug('event', { kind: target.kind, name: m.name, type, reason, message });
    this.pending = this.pending
      .then(() => this.write(target, type, reason, message))
      .catch((err: unknown) => {
        this.log.warn('could not record an event', { reason, object: `${target.kind}/${m.name}`, error: describeError(err) });
      });
  }

  /** Resolves when the events recorded so far are written (or failed). */
  flush(): Promise<void> {
    return this.pending;
  }

  private async write(target: EventTarget, type: EventType, reason: string, message: string): Promise<void> {
    const m = target.metadata!;
    const namespace = m.namespace!;
    const key = `${m.uid ?? m.name}|${type}|${reason}|${message}`;
    const now = new Date();
    const known = this.seen.get(key);
    if (known) {
      known.count++;
      try {
        await this.kube.core.patchNamespacedEvent(
          { name: known.name, namespace: known.namespace, body: { count: known.count, lastTimestamp: now.toISOString() } },
          setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
        );
        return;
      } catch {
        this.seen.delete(key); // gone (events expire after an hour): write a new one
      }
    }
    const name = `${m.name}.${now.getTime().toString(16)}${randomBytes(3).toString('hex')}`;
    const event: CoreV1Event = {
      metadata: { name, namespace },
      involvedObject: { apiVersion: target.apiVersion, kind: target.kind, name: m.name, namespace, uid: m.uid, resourceVersion: m.resourceVersion },
      type,
      reason,
      message: message.slice(0, 1024),
      source: { component: this.component },
      reportingComponent: this.component,
      reportingInstance: this.instance,
      firstTimestamp: now,
      lastTimestamp: now,
      count: 1,
    };
    await this.kube.core.createNamespacedEvent({ namespace, body: event });
    if (this.seen.size >= MAX_REMEMBERED) this.seen.delete(this.seen.keys().next().value!);
    this.seen.set(key, { name, namespace, count: 1 });
  }
}
