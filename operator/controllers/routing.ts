import { ROUTING_CONFIGMAP } from '../../contract/names.ts';
import { parseRouting, routingHash, routingText } from '../../contract/routing.ts';
import { appliedRoutingText, routingChanges, routingConfigMap } from '../builders/routing-configmap.ts';
import type { ControllerManager, OperatorContext } from '../context.ts';
import type { Controller, Result } from '../runtime/controller.ts';
import { desiredRouting, servingInputsChanged } from '../serving-rule.ts';

// The routing controller (key: the namespace). From every ModelVersion it computes which version
// serves each model and writes routing.json into the routing ConfigMap. The service pods watch
// that ConfigMap and hot-swap in place: nothing restarts. A burst of ModelVersion changes
// collapses into few reconciles (one key).

function routingReconciler(ctx: OperatorContext) {
  const log = ctx.log.child('routing');
  // What this process last wrote, and the object's resourceVersion it saw before: while the cache
  // still shows that version it is behind the write, and writing again would only repeat it.
  let written: { hash: string; before: string | undefined } | undefined;
  return async (namespace: string): Promise<Result | undefined> => {
    const routing = desiredRouting(ctx.cache.modelVersions.list(namespace));
    const text = routingText(routing);
    const hash = routingHash(text);
    const cm = ctx.cache.routing.get(ROUTING_CONFIGMAP, namespace);
    const applied = appliedRoutingText(cm);
    if (applied === text) return;
    if (written?.hash === hash && written.before === cm?.metadata?.resourceVersion) return;
    const result = await ctx.kube.apply(routingConfigMap(namespace, text));
    written = { hash, before: cm?.metadata?.resourceVersion };
    const changes = routingChanges(parseRouting(applied), routing);
    log.info('routing updated', { namespace, hash, changes });
    if (changes.length > 0) ctx.events.record(result, 'Normal', 'RoutingUpdated', `routing ${hash}: ${changes.join(', ')}`);
    // The pods pick it up in a second or two: look at them often until they have.
    ctx.servingPods.hurry();
  };
}

/** What wakes it (key: the namespace): a change to what serves any model, and the routing ConfigMap. */
export function setupRoutingController(mgr: ControllerManager): Controller {
  const { cache, config } = mgr.ctx;
  const namespace = (o: { metadata?: { namespace?: string } }) => o.metadata?.namespace;
  return mgr
    .controller('routing', 1, routingReconciler(mgr.ctx), () => [config.NAMESPACE])
    .watch(cache.modelVersions, (mv, old, event) => (event === 'update' && old && !servingInputsChanged(old, mv) ? undefined : namespace(mv)))
    .watch(cache.routing, namespace);
}
