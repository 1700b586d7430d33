import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { INGRESS_CLASS, KIND_CLUSTER, KIND_POD_CIDR, NODE_BACKUPS_DIR, NODE_MODELS_DIR } from '../../infra/names.ts';
import { distObjects, find, loadYaml, repoRoot, type Obj } from './helpers.ts';

// kind-config.yaml: parses, one control-plane node labelled for the ingress controller with host
// ports 80 and 443, the model store (and backups) mounted from the WSL2 ext4 home, each choice
// commented. And the Traefik that `make cluster` installs on it (infra/traefik-values.yaml): on
// that node, on those ports, serving the manifests' IngressClass, the release the tests run.

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

describe('the Traefik of make cluster (infra/traefik-values.yaml, infra/scripts/cluster.sh)', () => {
  const values = loadYaml(join(repoRoot, 'infra/traefik-values.yaml'))[0];
  const script = readFileSync(join(repoRoot, 'infra/scripts/cluster.sh'), 'utf8');

  test('the release the end-to-end tests build and run (test/k8s/traefik/go.mod)', () => {
    const gomod = readFileSync(join(repoRoot, 'test/k8s/traefik/go.mod'), 'utf8');
    const built = /^\s*github\.com\/traefik\/traefik\/v3 (v\S+)/m.exec(gomod)?.[1];
    assert.ok(built, 'test/k8s/traefik/go.mod pins Traefik');
    assert.equal(values.image.tag, built);
  });

  test('its IngressClass is the one the manifests name', () => {
    assert.deepEqual(values.ingressClass, { enabled: true, isDefaultClass: false, name: INGRESS_CLASS });
    const ingress = distObjects().find((o) => o.kind === 'Ingress');
    assert.equal(ingress?.spec.ingressClassName, INGRESS_CLASS);
    // The chart's controller watches the class named after the release.
    assert.match(script, new RegExp(`^TRAEFIK_RELEASE=${INGRESS_CLASS}$`, 'm'));
  });

  test("on kind's ingress node, holding the node ports kind-config.yaml maps from the host", () => {
    const node = config.nodes[0];
    for (const [k, v] of Object.entries(values.nodeSelector as Record<string, string>)) assert.equal(node.labels[k], v, `node label ${k}`);
    const mapped = (node.extraPortMappings as Obj[]).map((p) => p.containerPort).sort();
    assert.deepEqual([values.ports.web.hostPort, values.ports.websecure.hostPort].sort(), mapped);
    assert.equal(values.service.type, 'ClusterIP', 'no LoadBalancer in kind');
    // Two pods cannot hold one hostPort on one node: an update must stop the old pod first.
    assert.deepEqual(values.updateStrategy.rollingUpdate, { maxUnavailable: 1, maxSurge: 0 });
  });

  test('cluster.sh installs Traefik’s chart at a pinned version with these values, and no longer ingress-nginx', () => {
    assert.match(script, /^TRAEFIK_CHART_VERSION=\$\{TRAEFIK_CHART_VERSION:-\d+\.\d+\.\d+\}$/m);
    assert.match(script, /helm --kube-context "\$KUBE_CONTEXT" upgrade --install "\$TRAEFIK_RELEASE" traefik/);
    assert.match(script, /--values "\$TRAEFIK_VALUES" --wait/);
    assert.match(script, /infra\/traefik-values\.yaml/);
    assert.doesNotMatch(script, /kc apply -f .*ingress-nginx/);
  });
});
