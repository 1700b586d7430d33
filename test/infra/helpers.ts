import { accessSync, constants, readdirSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Yaml } from 'cdk8s';
import { runCommand, type CommandResult } from '../helpers/processes.ts';

// Shared by the infra tests: paths, YAML loading and running a command with a deadline.

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const distDir = join(repoRoot, 'infra/dist');

// biome-ignore lint/suspicious/noExplicitAny: parsed YAML, read field by field
export type Obj = Record<string, any>;

/** Every YAML document of a file (cdk8s's loader, YAML 1.1 as kubectl reads it). */
export function loadYaml(path: string): Obj[] {
  return Yaml.load(path) as Obj[];
}

/** The .yaml files under infra/dist/, relative to it, sorted. */
export function distFiles(): string[] {
  return readdirSync(distDir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && e.name.endsWith('.yaml'))
    .map((e) => relative(distDir, join(e.parentPath, e.name)))
    .sort();
}

/** Every object of the committed manifests, with the file it came from. */
export function distObjects(): (Obj & { file: string })[] {
  return distFiles().flatMap((file) => loadYaml(join(distDir, file)).map((o) => Object.assign(o, { file })));
}

export function find(objects: Obj[], kind: string, name: string): Obj {
  const o = objects.find((x) => x.kind === kind && x.metadata?.name === name);
  if (!o) throw new Error(`no ${kind} ${name} in the manifests`);
  return o;
}

export type RunResult = CommandResult;

/** Runs a command, killing it after `timeoutMs`. */
export function run(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; input?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  return runCommand(cmd, args, { ...opts, cwd: opts.cwd ?? repoRoot });
}

/** A linter installed by `make infra-tools` (a prerequisite of `make test`). */
export function infraTool(name: 'hadolint' | 'shellcheck'): string {
  const path = join(repoRoot, '.cache/infra-tools/bin', name);
  try {
    accessSync(path, constants.X_OK);
  } catch {
    throw new Error(`${name} is not installed at ${path}: run \`make infra-tools\` (make test does)`);
  }
  return path;
}

/** promtool (Debian's prometheus package, installed by scripts/system-packages.sh in make test). */
export const PROMTOOL = 'promtool';

/** What kind's default StorageClass does for Redis's claim, on a test control plane: a class and a volume. */
export const KIND_STORAGE_STANDIN = JSON.stringify({
  apiVersion: 'v1',
  kind: 'List',
  items: [
    {
      apiVersion: 'storage.k8s.io/v1',
      kind: 'StorageClass',
      metadata: { name: 'standard', annotations: { 'storageclass.kubernetes.io/is-default-class': 'true' } },
      provisioner: 'kubernetes.io/no-provisioner',
      volumeBindingMode: 'Immediate',
    },
    {
      apiVersion: 'v1',
      kind: 'PersistentVolume',
      metadata: { name: 'test-redis-data' },
      spec: { capacity: { storage: '1Gi' }, accessModes: ['ReadWriteOnce'], storageClassName: 'standard', hostPath: { path: '/tmp/test-redis-data' } },
    },
  ],
});
