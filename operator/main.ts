import { KubeConfig } from '@kubernetes/client-node';
import { loadOperatorConfig } from './config.ts';
import { createLogger } from './runtime/log.ts';
import { Operator } from './manager.ts';

// `node operator/main.ts`: reads the configuration, connects (in a pod: its ServiceAccount;
// on a host: $KUBECONFIG or ~/.kube/config) and runs the operator until SIGTERM/SIGINT.
// Exit codes: 0 stopped, 1 lost the leader lease or failed to start, 2 bad configuration.

let config;
try {
  config = loadOperatorConfig();
} catch (err) {
  process.stderr.write(`${(err as Error).message}\n`);
  process.exit(2);
}
const log = createLogger({ level: config.LOG_LEVEL, format: config.LOG_FORMAT, fields: { identity: config.identity } });
const kc = new KubeConfig();
kc.loadFromDefault();
const cluster = kc.getCurrentCluster();
if (!cluster) {
  log.error('no cluster in the kubeconfig: set KUBECONFIG, or run in a pod');
  process.exit(2);
}

const operator = new Operator({
  config,
  kc,
  log,
  onLeadershipLost: () => {
    log.error('leader election lost; exiting so a fresh process campaigns again');
    void operator.stop().finally(() => process.exit(1));
  },
});

let stopping = false;
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    if (stopping) process.exit(1); // a second signal: stop now
    stopping = true;
    log.info('stopping', { signal });
    const force = setTimeout(() => process.exit(1), 25_000);
    force.unref();
    void operator.stop().then(() => process.exit(0));
  });
}

try {
  log.info('connecting', { server: cluster.server, namespace: config.NAMESPACE });
  await operator.start();
} catch (err) {
  log.error('failed to start', { error: err as Error });
  process.exit(1);
}
