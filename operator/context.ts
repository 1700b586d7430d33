import type { V1ConfigMap, V1CronJob, V1EndpointSlice, V1Job, V1Pod } from '@kubernetes/client-node';
import type { ModelVersion } from '../contract/model-version.ts';
import type { OperatorConfig } from './config.ts';
import type { Controller, Reconcile } from './runtime/controller.ts';
import type { EventRecorder } from './runtime/events.ts';
import type { Informer } from './runtime/informer.ts';
import type { KubeClient } from './runtime/kube-client.ts';
import type { Logger } from './runtime/log.ts';
import type { OperatorMetrics } from './runtime/metrics.ts';
import type { ServingPods } from './serving-pods.ts';

// What every reconcile gets: configuration, the API client, the informers' caches (the only state
// a reconcile reads besides what it fetches), the event recorder, logs and metrics.

export interface Caches {
  modelVersions: Informer<ModelVersion>;
  importJobs: Informer<V1Job>;
  backupCronJobs: Informer<V1CronJob>;
  importPods: Informer<V1Pod>;
  routing: Informer<V1ConfigMap>;
  /** The service's EndpointSlices: its ready pods. */
  endpointSlices: Informer<V1EndpointSlice>;
}

export interface OperatorContext {
  config: OperatorConfig;
  kube: KubeClient;
  cache: Caches;
  events: EventRecorder;
  log: Logger;
  metrics: OperatorMetrics;
  /** What each ready service pod serves. */
  servingPods: ServingPods;
}

/** What a controller's setup gets from the manager (kubebuilder's SetupWithManager). */
export interface ControllerManager {
  ctx: OperatorContext;
  /** A controller with its queue; `keys` lists every key it owns, queued at the start of leadership and at each resync. */
  controller(name: string, workers: number, reconcile: Reconcile, keys: () => Iterable<string>): Controller;
}

/** Work queue keys: "namespace/name" (a ModelVersion), "namespace/model" (a model's backups). */
export const objectKey = (namespace: string, name: string) => `${namespace}/${name}`;

export function splitKey(key: string): [namespace: string, name: string] {
  const i = key.indexOf('/');
  return i < 0 ? ['', key] : [key.slice(0, i), key.slice(i + 1)];
}
