// `make cluster-local`: a local Kubernetes control plane for a person (etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler and kwok with one fake Node), built from source by
// test/k8s/build-bins.sh. Stays up until Ctrl-C, then stops everything and removes its files.
//
//   node test/k8s/cluster-local.ts [--log]
import { copyFileSync, mkdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startControlPlane } from './control-plane.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const log = process.argv.includes('--log');

process.stderr.write('starting the local control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok)...\n');
const cp = await startControlPlane({ controllers: true, log });

// A stable path as well, so a second terminal can always use the same line.
const stable = join(root, '.cache', 'cluster-local', 'kubeconfig');
mkdirSync(dirname(stable), { recursive: true });
copyFileSync(cp.kubeconfigPath, stable);

const kubectl = join(cp.binDir, 'kubectl');
process.stdout.write(
  [
    '',
    `Control plane ready in ${(cp.startupMs / 1000).toFixed(1)} s: ${cp.server} (Kubernetes v1.34, one kwok node "${cp.nodeName}")`,
    `KUBECONFIG: ${stable}`,
    `kubectl:    ${kubectl}`,
    '',
    'In another terminal:',
    `  export KUBECONFIG=${stable}`,
    `  export PATH=${cp.binDir}:$PATH`,
    '  kubectl get nodes',
    '',
    'Press Ctrl-C to stop (everything is removed).',
    '',
  ].join('\n'),
);

// control-plane.ts's own SIGINT/SIGTERM handler stops the processes and exits; this one only talks.
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    process.stderr.write(`\n${sig}: stopping the control plane...\n`);
    rmSync(stable, { force: true });
  });
}

// Keep the process alive until a signal arrives.
setInterval(() => {}, 1 << 30);
