import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { manifestFiles } from './app.ts';

// `make synth`: writes the manifests to infra/dist/ (committed, so `kubectl apply -f infra/dist/`
// works without Node) and removes files no chart writes any more.

const dist = join(dirname(fileURLToPath(import.meta.url)), 'dist');

function yamlFilesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && /\.ya?ml$/.test(e.name))
    .map((e) => relative(dir, join(e.parentPath, e.name)));
}

const files = manifestFiles();
mkdirSync(dist, { recursive: true });
const written = new Set(files.map((f) => f.path));
for (const stale of yamlFilesUnder(dist).filter((p) => !written.has(p))) {
  rmSync(join(dist, stale));
  console.log(`removed infra/dist/${stale}`);
}
for (const f of files) {
  mkdirSync(dirname(join(dist, f.path)), { recursive: true });
  writeFileSync(join(dist, f.path), f.yaml);
  console.log(`wrote infra/dist/${f.path} (${f.objects.length} objects)`);
}
