// `make cluster-local`: a local Kubernetes control plane for a person (etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler and kwok with one fake Node), built from source by
// test/k8s/build-bins.sh. Stays up until Ctrl-C, then stops everything and removes its files.
// `make cluster-local NODE=real`: a real node instead of kwok's (kubelet, containerd, runc, CNI,
// kube-proxy, CoreDNS; test/k8s/real-node.ts) with the project's images built and loaded
// (infra/images/build.sh), and the manifests made for it (test/k8s/real-node-deploy.ts: small
// requests, the volumes in the node's folder, a volume for redis-data) in .cache/cluster-local/dist,
// so `make deploy KUBE_CONTEXT=test DIST=.cache/cluster-local/dist` runs the real pods.
//
//   node test/k8s/cluster-local.ts [--node=kwok|real] [--log]
import { copyFileSync, mkdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startControlPlane } from './control-plane.ts';
import { startRealNode, type RealNode } from './real-node.ts';
import { prepareDeploy } from './real-node-deploy.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const log = process.argv.includes('--log');
const nodeArg = process.argv.find((a) => a.startsWith('--node='))?.slice('--node='.length) ?? 'kwok';
if (nodeArg !== 'kwok' && nodeArg !== 'real') {
  process.stderr.write(`unknown --node=${nodeArg}: kwok (a fake node, the default) or real (kubelet + containerd)\n`);
  process.exit(2);
}
const real = nodeArg === 'real';

process.stderr.write(
  real
    ? 'starting the local control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler) and a real node\n' +
        '(containerd, kubelet, kube-proxy, CoreDNS; the images are built on first use: minutes)...\n'
    : 'starting the local control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok)...\n',
);
const cp = await startControlPlane({ controllers: true, kwok: !real, log });
let node: RealNode | undefined;
if (real) node = await startRealNode(cp, { log });

// A stable path as well, so a second terminal can always use the same line.
const stable = join(root, '.cache', 'cluster-local', 'kubeconfig');
mkdirSync(dirname(stable), { recursive: true });
copyFileSync(cp.kubeconfigPath, stable);
const dist = join(root, '.cache', 'cluster-local', 'dist');
if (node) {
  rmSync(dist, { recursive: true, force: true });
  await prepareDeploy(cp, node, dist);
}

const kubectl = join(cp.binDir, 'kubectl');
process.stdout.write(
  [
    '',
    node
      ? `Control plane ready in ${(cp.startupMs / 1000).toFixed(1)} s: ${cp.server} (Kubernetes v1.34); real node "${node.name}" ready in ${(node.startupMs / 1000).toFixed(1)} s at ${node.ip} (pods ${node.podCIDR}, DNS ${node.dnsIP})`
      : `Control plane ready in ${(cp.startupMs / 1000).toFixed(1)} s: ${cp.server} (Kubernetes v1.34, one kwok node "${cp.nodeName}")`,
    ...(node ? [`Images on the node: ${node.images.join(', ')}`, `Node files and logs: ${node.dir}`] : []),
    `KUBECONFIG: ${stable}`,
    `kubectl:    ${kubectl}`,
    '',
    'In another terminal:',
    `  export KUBECONFIG=${stable}`,
    `  export PATH=${cp.binDir}:$PATH`,
    '  kubectl get nodes',
    ...(node
      ? [
          `  make deploy KUBE_CONTEXT=test DIST=${dist}`,
          '      # infra/dist/ with requests that fit this node, its volumes in the node folder (removed at Ctrl-C)',
          '  kubectl apply -f operator/samples/   # then: kubectl get mv -n analytics -w',
        ]
      : []),
    '',
    'Press Ctrl-C to stop (everything is removed).',
    '',
  ].join('\n'),
);

// control-plane.ts's own SIGINT/SIGTERM handler stops the processes (the real node first, through
// its clean-up hook) and exits; this one only talks.
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    process.stderr.write(`\n${sig}: stopping the control plane...\n`);
    rmSync(stable, { force: true });
    rmSync(dist, { recursive: true, force: true });
  });
}

// Keep the process alive until a signal arrives.
setInterval(() => {}, 1 << 30);
