import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { KIND_CLUSTER, KIND_POD_CIDR, NODE_BACKUPS_DIR, NODE_MODELS_DIR } from '../../infra/names.ts';
import { distObjects, find, loadYaml, repoRoot, type Obj } from './helpers.ts';

// kind-config.yaml: parses, one control-plane node labelled for ingress-nginx with host ports 80
// and 443, the model store (and backups) mounted from the WSL2 ext4 home, each choice commented.

const text = readFileSync(join(repoRoot, 'kind-config.yaml'), 'utf8');
const config = loadYaml(join(repoRoot, 'kind-config.yaml'))[0];

describe('kind-config.yaml', () => {
  test('a kind v1alpha4 Cluster named for the make targets', () => {
    assert.equal(config.kind, 'Cluster');
    assert.equal(config.apiVersion, 'kind.x-k8s.io/v1alpha4');
    assert.equal(config.name, KIND_CLUSTER);
    assert.equal(config.networking.podSubnet, KIND_POD_CIDR, 'the pod network TRUSTED_PROXIES believes');
  });

  test('one control-plane node, ingress-ready, with host ports 80 and 443', () => {
    assert.equal(config.nodes.length, 1);
    const node = config.nodes[0];
    assert.equal(node.role, 'control-plane');
    assert.deepEqual(node.labels, { 'ingress-ready': 'true' });
    const ports = (node.extraPortMappings as Obj[]).map((p) => [p.containerPort, p.hostPort, p.protocol]);
    assert.deepEqual(ports, [
      [80, 80, 'TCP'],
      [443, 443, 'TCP'],
    ]);
  });

  test('the models and backups come from the Linux home (ext4), to the node paths of the PersistentVolumes', () => {
    const mounts = config.nodes[0].extraMounts as Obj[];
    const byContainer = Object.fromEntries(mounts.map((m) => [m.containerPath, m.hostPath]));
    assert.equal(byContainer[NODE_MODELS_DIR], '$HOME/analytics-models'.replace('$HOME', '$' + '{HOME}'));
    assert.equal(byContainer[NODE_BACKUPS_DIR], '$HOME/analytics-backups'.replace('$HOME', '$' + '{HOME}'));
    for (const m of mounts) assert.doesNotMatch(m.hostPath, /^\/mnt\//);
    const objects = distObjects();
    assert.equal(find(objects, 'PersistentVolume', 'analytics-models').spec.hostPath.path, NODE_MODELS_DIR);
    assert.equal(find(objects, 'PersistentVolume', 'analytics-backups').spec.hostPath.path, NODE_BACKUPS_DIR);
    // make cluster substitutes ${HOME}, which kind would not expand.
    assert.match(readFileSync(join(repoRoot, 'infra/scripts/cluster.sh'), 'utf8'), /sed "s\|\\\$\{HOME\}\|\$HOME\|g"/);
  });

  test('every WSL2 choice has a comment', () => {
    const lines = text.split('\n');
    for (const key of ['apiServerAddress:', 'podSubnet:', '- role: control-plane', 'labels:', 'extraPortMappings:', '- hostPath:']) {
      const i = lines.findIndex((l) => l.includes(key));
      assert.ok(i > 0, key);
      assert.match(lines[i - 1].trim(), /^#/, `a comment above ${key}`);
    }
    assert.match(text, /\/mnt\/c/);
    assert.match(text, /inotify/);
  });
});
