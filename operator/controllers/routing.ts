import { describeError } from '../../contract/kubernetes-errors.ts';
import type { ControllerManager, OperatorContext } from '../context.ts';
import type { Controller, Result } from '../runtime/controller.ts';
import { ROUTING_CONFIGMAP } from '../../contract/names.ts';
import { rolloutPatch, stampedHash } from '../builders/deployment-rollout.ts';
import { appliedRoutingText, routingChanges, routingConfigMap } from '../builders/routing-configmap.ts';
import { parseRouting, routingHash, routingText } from '../../contract/routing.ts';
import { desiredRouting, servingInputsChanged } from '../serving-rule.ts';

// The routing controller (key: the namespace). From every ModelVersion it computes which version
// serves each model, writes routing.json into the routing ConfigMap, then stamps the routing's hash
// on the service Deployment's pod template, which rolls it. The ConfigMap first, so new pods read
// the new routing. A burst of ModelVersion changes collapses into few reconciles (one key).

function routingReconciler(ctx: OperatorContext) {
  const log = ctx.log.child('routing');
  let warnedMissing = false;
  // What this process last wrote, and the object's resourceVersion it saw before: while the cache
  // still shows that version it is behind the write, and writing again would only repeat it.
  const written = new Map<string, { hash: string; before: string | undefined }>();
  const cacheBehind = (key: string, hash: string, resourceVersion: string | undefined) => {
    const w = written.get(key);
    return w !== undefined && w.hash === hash && w.before === resourceVersion;
  };
  return async (namespace: string): Promise<Result | undefined> => {
    const routing = desiredRouting(ctx.cache.modelVersions.list(namespace));
    const text = routingText(routing);
    const hash = routingHash(text);
    const cm = ctx.cache.routing.get(ROUTING_CONFIGMAP, namespace);
    const applied = appliedRoutingText(cm);
    const cmKey = `${namespace}/configmap`;
    if (applied !== text && !cacheBehind(cmKey, hash, cm?.metadata?.resourceVersion)) {
      const result = await ctx.kube.apply(routingConfigMap(namespace, text));
      written.set(cmKey, { hash, before: cm?.metadata?.resourceVersion });
      const changes = routingChanges(parseRouting(applied), routing);
      log.info('routing updated', { namespace, hash, changes });
      if (changes.length > 0) ctx.events.record(result, 'Normal', 'RoutingUpdated', `routing ${hash}: ${changes.join(', ')}`);
    }
    const name = ctx.config.SERVICE_DEPLOYMENT;
    const deployment = ctx.cache.deployments.get(name, namespace);
    if (!deployment) {
      if (!warnedMissing) log.warn('the service Deployment does not exist; routing is written, nothing rolls', { namespace, deployment: name });
      warnedMissing = true;
      return;
    }
    warnedMissing = false;
    const deploymentKey = `${namespace}/deployment`;
    if (stampedHash(deployment) === hash || cacheBehind(deploymentKey, hash, deployment.metadata?.resourceVersion)) return;
    try {
      const patched = await ctx.kube.apply(rolloutPatch(namespace, name, hash));
      written.set(deploymentKey, { hash, before: deployment.metadata?.resourceVersion });
      log.info('rolling the service onto the new routing', { namespace, deployment: name, hash });
      ctx.events.record(patched, 'Normal', 'RoutingRollout', `pod template stamped with routing ${hash}: rolling out`);
    } catch (err) {
      throw new Error(`could not stamp Deployment ${name} with routing ${hash}: ${describeError(err)}`);
    }
  };
}

/** What wakes it (key: the namespace): a change to what serves any model, the routing ConfigMap, the service Deployment. */
export function setupRoutingController(mgr: ControllerManager): Controller {
  const { cache, config } = mgr.ctx;
  const namespace = (o: { metadata?: { namespace?: string } }) => o.metadata?.namespace;
  return mgr
    .controller('routing', 1, routingReconciler(mgr.ctx), () => [config.NAMESPACE])
    .watch(cache.modelVersions, (mv, old, event) => (event === 'update' && old && !servingInputsChanged(old, mv) ? undefined : namespace(mv)))
    .watch(cache.routing, namespace)
    .watch(cache.deployments, namespace);
}
