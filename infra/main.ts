import { isDeepStrictEqual } from 'node:util';
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { manifestFiles } from './app.ts';
import { CHART_DIR, helmChartFiles } from './helm-chart.ts';
import { defaultSettings, settingsFromEnvironment } from './settings.ts';

// `make synth`: writes the manifests of the default settings to infra/dist/ (committed, so
// `kubectl apply -f infra/dist/` works without Node) and the Helm chart to infra/helm/, and
// removes files no chart writes any more. With settings (NAMESPACE=..., SERVICE_REPLICAS=...,
// OPERATOR_REPLICAS=..., INGRESS_CLASS=..., RUNBOOK_BASE_URL=..., SETTINGS_FILE=file.json) it
// writes only the manifests, to OUT (default infra/build/<namespace>/, not committed), so the
// committed defaults stay as they are.

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

function filesUnder(dir: string, match: RegExp): string[] {
  try {
    return readdirSync(dir, { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile() && match.test(e.name))
      .map((e) => relative(dir, join(e.parentPath, e.name)));
  } catch {
    return [];
  }
}

/** Writes `files` under `dir` and removes the other files matching `match` there. */
function writeTree(dir: string, files: { path: string; content: string }[], match: RegExp, what: (f: { path: string; content: string }) => string): void {
  mkdirSync(dir, { recursive: true });
  const written = new Set(files.map((f) => f.path));
  for (const stale of filesUnder(dir, match).filter((p) => !written.has(p))) {
    rmSync(join(dir, stale));
    console.log(`removed ${relative(root, join(dir, stale))}`);
  }
  for (const f of files) {
    mkdirSync(dirname(join(dir, f.path)), { recursive: true });
    writeFileSync(join(dir, f.path), f.content);
    console.log(`wrote ${relative(root, join(dir, f.path))}${what(f)}`);
  }
}

let settings;
try {
  settings = settingsFromEnvironment();
} catch (err) {
  console.error((err as Error).message);
  process.exit(2);
}
const custom = !isDeepStrictEqual(settings, defaultSettings);
const out = process.env.OUT ? resolve(process.env.OUT) : join(root, custom ? `infra/build/${settings.namespace}` : 'infra/dist');
const manifests = manifestFiles(settings);
writeTree(
  out,
  manifests.map((f) => ({ path: f.path, content: f.yaml })),
  /\.ya?ml$/,
  (f) => ` (${manifests.find((m) => m.path === f.path)!.objects.length} objects)`,
);
if (custom) {
  const dist = out.startsWith(`${root}/`) ? relative(root, out) : out;
  console.log(`settings: ${JSON.stringify(settings)}`);
  console.log(`deploy with: make deploy NAMESPACE=${settings.namespace} DIST=${dist}   (or kubectl apply -f ${dist}/)`);
} else {
  writeTree(join(root, CHART_DIR), helmChartFiles(), /./, () => '');
}
