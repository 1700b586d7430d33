// What `make deploy` needs on the real node (test/k8s/real-node.ts) that kind gives it, made ready
// by the end-to-end tests (test/e2e/cluster.ts) and by `make cluster-local NODE=real` alike:
//   - manifests that fit a 2-CPU node: `make synth` (infra/main.ts with SETTINGS_FILE and OUT)
//     with small requests, so both service pods, a surge pod and the import Jobs fit;
//   - the model and backup PersistentVolumes' host folders in the node's own folder instead of
//     /var/local/... (shared by everyone on this machine), owned by the image's uid as
//     docs/wsl2.md has a person do on kind; the node's clean-up removes them;
//   - a PersistentVolume for redis-data: this cluster has no StorageClass or provisioner (kind's
//     local-path provisioner plays that part there).
// Then infra/scripts/deploy.sh with DIST, KUBECONFIG and KUBE_CONTEXT=test deploys as on kind.
import assert from 'node:assert/strict';
import { chownSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NAMESPACE } from '../../contract/names.ts';
import { NODE_BACKUPS_DIR, NODE_MODELS_DIR, REDIS_PVC } from '../../infra/names.ts';
import { runCommand } from '../helpers/processes.ts';
import type { ControlPlane } from './control-plane.ts';
import type { RealNode } from './real-node.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Small requests, so both service pods, a surge pod and the Jobs fit 2 CPUs. */
export const SMALL_NODE_SETTINGS = {
  service: { replicas: 2, resources: { requests: { cpu: '250m', memory: '256Mi' }, limits: { cpu: '1', memory: '1Gi' } } },
  operator: { replicas: 2 },
};

/** The image's user (the Dockerfile's USER) and Redis's (infra/charts/redis-chart.ts). */
const APP_UID = 1000;
const APP_GID = 1000;
const REDIS_UID = 999;

export interface NodeVolumes {
  models: string;
  backups: string;
  redis: string;
}

/**
 * The manifests for `node` in `out` (a DIST folder for deploy.sh) and the volumes they bind, made
 * ready. `service` is laid over the small settings' (e.g. trustedProxies).
 */
export async function prepareDeploy(
  cp: ControlPlane,
  node: RealNode,
  out: string,
  service: Record<string, unknown> = {},
): Promise<{ dist: string; dirs: NodeVolumes }> {
  const dirs = { models: join(node.dir, 'volumes', 'models'), backups: join(node.dir, 'volumes', 'backups'), redis: join(node.dir, 'volumes', 'redis-data') };
  for (const [dir, uid] of [
    [dirs.models, APP_UID],
    [dirs.backups, APP_UID],
    [dirs.redis, REDIS_UID],
  ] as const) {
    mkdirSync(dir, { recursive: true, mode: 0o750 });
    chownSync(dir, uid, APP_GID);
  }

  const settingsFile = join(dirname(out), 'node-settings.json');
  writeFileSync(settingsFile, JSON.stringify({ ...SMALL_NODE_SETTINGS, service: { ...SMALL_NODE_SETTINGS.service, ...service } }));
  const r = await runCommand(process.execPath, [join(root, 'infra', 'main.ts')], {
    cwd: root,
    env: { ...process.env, SETTINGS_FILE: settingsFile, OUT: out },
    timeoutMs: 120_000,
  });
  assert.equal(r.code, 0, `make synth (node infra/main.ts) failed: ${r.stderr}${r.stdout}`);
  const file = join(out, '20-service.yaml');
  let yaml = readFileSync(file, 'utf8');
  for (const [from, to] of [
    [NODE_MODELS_DIR, dirs.models],
    [NODE_BACKUPS_DIR, dirs.backups],
  ] as const) {
    const line = `    path: ${from}\n`;
    assert.equal(yaml.split(line).length, 2, `${file} names the host folder ${from} once, as a PersistentVolume's hostPath`);
    yaml = yaml.replace(line, `    path: ${to}\n`);
  }
  writeFileSync(file, yaml);

  // redis-data asks the default StorageClass, which this cluster lacks: a volume reserved for it.
  const pv = await cp.kubectl(['apply', '-f', '-'], {
    timeoutMs: 60_000,
    input: JSON.stringify({
      apiVersion: 'v1',
      kind: 'PersistentVolume',
      metadata: { name: `${REDIS_PVC}-node` },
      spec: {
        capacity: { storage: '1Gi' },
        accessModes: ['ReadWriteOnce'],
        persistentVolumeReclaimPolicy: 'Retain',
        storageClassName: '',
        hostPath: { path: dirs.redis, type: 'Directory' },
        claimRef: { namespace: NAMESPACE, name: REDIS_PVC },
      },
    }),
  });
  assert.equal(pv.code, 0, `kubectl apply of the redis-data PersistentVolume: ${pv.stderr}`);
  return { dist: out, dirs };
}
