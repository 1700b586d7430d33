import { readFileSync } from 'node:fs';
import { Yaml } from 'cdk8s';
import { z } from 'zod';
import { manifestObjects } from './app.ts';
import { DASHBOARD_UID } from './monitoring/dashboard.ts';
import {
  BACKUPS_PVC,
  CREATE_ONLY_LABEL,
  LABELS,
  MODELS_PVC,
  NAMESPACE,
  NODE_BACKUPS_DIR,
  NODE_MODELS_DIR,
  SERVICE_NAME,
  TOKEN_KEY,
  TOKEN_SECRET,
  perNamespace,
} from './names.ts';
import { type Settings, defaultSettings, settingsSchema } from './settings.ts';

// The Helm chart (infra/helm/analytics-api/, written by `make synth`), generated from the same
// cdk8s charts as infra/dist/. `cdk8s synth --format helm` only wraps the synthesized YAML in a
// Chart.yaml: no values, the namespace and every figure stay fixed. So the charts are synthesized
// once more with a marker in each setting (a sentinel namespace, a sentinel per value), and each
// marker in the objects becomes the template expression of its setting: `.Release.Namespace`
// for the namespace, `.Values.<path>` for the rest. What a chart needs beyond that is added here:
// the CRD goes to crds/, the Namespace is Helm's (`--create-namespace`), the routing ConfigMap is
// created once and then left to the operator (lookup + resource-policy keep), the API token
// Secret is made once with a random token, and the ServiceMonitors and the PrometheusRule render
// only where their CRDs exist.

const CHART_NAME = SERVICE_NAME;
export const CHART_DIR = `infra/helm/${CHART_NAME}`;
const packageVersion = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;

/** The values: the settings, less the namespace (the release's), plus what only the chart decides. */
const valuesSchema = z.strictObject({
  service: settingsSchema.shape.service,
  operator: settingsSchema.shape.operator,
  redis: settingsSchema.shape.redis,
  monitoring: settingsSchema.shape.monitoring.extend({
    enabled: z.boolean().describe('Render the ServiceMonitors, the PrometheusRule (where the Prometheus operator CRDs exist) and the dashboard ConfigMap'),
  }),
  apiToken: z.strictObject({
    create: z.boolean().describe(`Create the ${TOKEN_SECRET} Secret with a random token when it does not exist (kept on upgrade and uninstall)`),
  }),
});
type Values = z.infer<typeof valuesSchema>;

function defaultValues(s: Settings = defaultSettings): Values {
  return {
    service: s.service,
    operator: s.operator,
    redis: s.redis,
    monitoring: { enabled: true, runbookBaseUrl: s.monitoring.runbookBaseUrl },
    apiToken: { create: true },
  };
}

// ---------------------------------------------------------------------------------------------
// Markers

/** A valid DNS label nothing else in the manifests contains. */
const NS = 'helmreleasenamespacex';

interface Marker {
  /** What the synthesized objects hold in place of the setting. */
  sentinel: string | number;
  /** The Go template expression of the setting. */
  expr: string;
}

/** A `.Values` path per settings leaf, each with its own sentinel. */
function valueMarkers(): { settings: Settings; markers: Marker[] } {
  const markers: Marker[] = [];
  const walk = (node: unknown, path: string[]): unknown => {
    if (node && typeof node === 'object' && !Array.isArray(node)) {
      return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, walk(v, [...path, k])]));
    }
    const expr = `$.Values.${path.join('.')}`;
    // Replicas stay integers where cdk8s writes them; everything else (cpu too: cdk8s writes the
    // quantity as a string) is a string, rendered quoted.
    const sentinel = path[path.length - 1] === 'replicas' ? 7_300_001 + markers.length : `helmvalue${markers.length}x`;
    markers.push({ sentinel, expr });
    return sentinel;
  };
  const values = walk(
    { service: defaultSettings.service, operator: defaultSettings.operator, redis: defaultSettings.redis, monitoring: defaultSettings.monitoring },
    [],
  ) as Omit<Settings, 'namespace'>;
  return { settings: { namespace: NS, ...values }, markers };
}

/** The names perNamespace() derives from the namespace, as the chart's helper template. */
const PER_NAMESPACE = [MODELS_PVC, BACKUPS_PVC, NODE_MODELS_DIR, NODE_BACKUPS_DIR, DASHBOARD_UID];

function namespaceMarkers(): Marker[] {
  return [
    ...PER_NAMESPACE.map((name) => ({
      sentinel: perNamespace(name, NS),
      expr: `include "${CHART_NAME}.perNamespace" (list ${JSON.stringify(name)} $.Release.Namespace)`,
    })),
    { sentinel: NS, expr: '$.Release.Namespace' },
  ];
}

/**
 * Replaces the sentinels in the objects by tokens: a whole string or number becomes one token
 * (rendered `{{ expr | quote }}` for strings, `{{ expr }}` for numbers), a sentinel inside a
 * longer string (an alert's expression, the dashboard's JSON) an inline token (`{{ expr }}`).
 */
class Tokens {
  private readonly actions: string[] = [];
  private readonly byString: Marker[];
  private readonly pattern: RegExp;
  private readonly numbers = new Map<number, Marker>();

  constructor(markers: Marker[]) {
    this.byString = markers.filter((m) => typeof m.sentinel === 'string').sort((a, b) => String(b.sentinel).length - String(a.sentinel).length);
    this.pattern = new RegExp(this.byString.map((m) => String(m.sentinel).replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')).join('|'), 'g');
    for (const m of markers) if (typeof m.sentinel === 'number') this.numbers.set(m.sentinel, m);
  }

  private token(action: string): string {
    this.actions.push(action);
    return `helmtoken${this.actions.length - 1}x`;
  }

  private inline(s: string): string {
    return s.replace(this.pattern, (found) => this.token(`{{ ${this.byString.find((m) => m.sentinel === found)!.expr} }}`));
  }

  apply(node: unknown): unknown {
    if (Array.isArray(node)) return node.map((v) => this.apply(v));
    if (node && typeof node === 'object') return Object.fromEntries(Object.entries(node).map(([k, v]) => [this.inline(k), this.apply(v)]));
    if (typeof node === 'number') {
      const m = this.numbers.get(node);
      return m ? this.token(`{{ ${m.expr} }}`) : node;
    }
    if (typeof node === 'string') {
      const whole = this.byString.find((m) => m.sentinel === node);
      return whole ? this.token(`{{ ${whole.expr} | quote }}`) : this.inline(node);
    }
    return node;
  }

  /**
   * YAML text with its own braces escaped (an alert's `{{ $value }}`, a legend's `{{route}}`, a
   * JSON `{}}`: every run of two or more braces becomes a Go string literal), then the tokens
   * turned into template actions.
   */
  render(text: string): string {
    const escaped = text.replace(/[{}]{2,}/g, (run) => `{{ ${JSON.stringify(run)} }}`);
    if (/[{}]helmtoken|helmtoken\d+x[{}]/.test(escaped)) throw new Error('a setting sits next to a brace, where its template action would merge with it');
    const out = escaped.replace(/helmtoken(\d+)x/g, (_, i: string) => this.actions[Number(i)]!);
    if (out.includes(NS) || /helmvalue\d+x/.test(out)) throw new Error('a setting reached the chart in a form the generator does not template');
    return out;
  }
}

// ---------------------------------------------------------------------------------------------
// The chart's files

// biome-ignore lint/suspicious/noExplicitAny: synthesized objects, edited field by field
type Obj = Record<string, any>;

export interface ChartFile {
  /** Relative to the chart's folder. */
  path: string;
  content: string;
}

const GENERATED = `# Generated by \`make synth\` from infra/ (cdk8s, infra/helm-chart.ts); do not edit.\n`;

/** Helm's labels on every object (and pod template): the release, and Helm as the manager. */
function helmLabels(o: Obj): void {
  for (const meta of [o.metadata, o.spec?.template?.metadata]) {
    if (!meta?.labels) continue;
    meta.labels[LABELS.managedBy] = 'helmreleaseservicex';
    meta.labels['app.kubernetes.io/instance'] = 'helmreleasenamex';
  }
  if (o.metadata?.labels) o.metadata.labels['helm.sh/chart'] = `${CHART_NAME}-${packageVersion}`;
}

const releaseMarkers: Marker[] = [
  { sentinel: 'helmreleaseservicex', expr: '$.Release.Service' },
  { sentinel: 'helmreleasenamex', expr: '$.Release.Name' },
];

const isCreateOnly = (o: Obj) => o.metadata?.labels?.[CREATE_ONLY_LABEL] === 'true';
const isPrometheusOperatorKind = (o: Obj) => String(o.apiVersion).startsWith('monitoring.coreos.com/');

function guarded(o: Obj, body: string, monitoring: boolean): string {
  if (isCreateOnly(o)) {
    // Created once: afterwards the operator owns it, and an upgrade must not reset it.
    return `{{- if not (lookup ${JSON.stringify(o.apiVersion)} ${JSON.stringify(o.kind)} $.Release.Namespace ${JSON.stringify(o.metadata.name)}) }}\n---\n${body}{{- end }}\n`;
  }
  if (isPrometheusOperatorKind(o)) {
    return `{{- if and $.Values.monitoring.enabled ($.Capabilities.APIVersions.Has ${JSON.stringify(`${o.apiVersion}/${o.kind}`)}) }}\n---\n${body}{{- end }}\n`;
  }
  if (monitoring) return `{{- if $.Values.monitoring.enabled }}\n---\n${body}{{- end }}\n`;
  return `---\n${body}`;
}

const HELPERS = `${GENERATED.replace('# ', '{{/* ').replace(/\n$/, ' */}}\n')}
{{/*
A cluster-wide name (PersistentVolume, folder of the node, dashboard uid) of something that
belongs to one namespace: as it is in ${NAMESPACE}, suffixed with the namespace in any other
(infra/names.ts perNamespace). Called with (list name namespace).
*/}}
{{- define "${CHART_NAME}.perNamespace" -}}
{{- $name := index . 0 -}}
{{- $namespace := index . 1 -}}
{{- if eq $namespace ${JSON.stringify(NAMESPACE)} -}}
{{- $name -}}
{{- else -}}
{{- printf "%s-%s" $name $namespace -}}
{{- end -}}
{{- end -}}
`;

function tokenSecret(): string {
  return `${GENERATED}{{- if $.Values.apiToken.create }}
{{- $existing := lookup "v1" "Secret" $.Release.Namespace ${JSON.stringify(TOKEN_SECRET)} }}
apiVersion: v1
kind: Secret
metadata:
  name: ${TOKEN_SECRET}
  namespace: {{ $.Release.Namespace | quote }}
  labels:
    ${LABELS.name}: ${SERVICE_NAME}
    ${LABELS.partOf}: ${SERVICE_NAME}
    ${LABELS.managedBy}: {{ $.Release.Service }}
    app.kubernetes.io/instance: {{ $.Release.Name }}
  annotations:
    # Kept on upgrade and uninstall: a new token would lock every client out.
    helm.sh/resource-policy: keep
type: Opaque
data:
  # The token it already has, else 64 random characters (what \`make deploy\` does with openssl).
  ${TOKEN_KEY}: {{ if $existing }}{{ index $existing.data ${JSON.stringify(TOKEN_KEY)} }}{{ else }}{{ randAlphaNum 64 | b64enc }}{{ end }}
{{- end }}
`;
}

/** values.yaml with each field's description (from the zod schema) as a comment above it. */
function valuesYaml(values: Values): string {
  const schema = z.toJSONSchema(valuesSchema, { target: 'draft-7' }) as Obj;
  const lines: string[] = [];
  const walk = (node: Obj, s: Obj | undefined, indent: string) => {
    for (const [k, v] of Object.entries(node)) {
      const sub = s?.properties?.[k] as Obj | undefined;
      if (sub?.description) lines.push(`${indent}# ${sub.description}`);
      if (v && typeof v === 'object') {
        lines.push(`${indent}${k}:`);
        walk(v as Obj, sub, `${indent}  `);
      } else {
        lines.push(`${indent}${k}: ${JSON.stringify(v)}`);
      }
    }
  };
  walk(values as Obj, schema, '');
  return `${GENERATED}# The release's namespace is helm's --namespace: every object, the RBAC subjects, the alerts and
# the dashboard follow it. values.schema.json checks these fields (helm install refuses others).
${lines.join('\n')}
`;
}

/** Every file of the chart, its values the default settings. */
export function helmChartFiles(): ChartFile[] {
  const { settings, markers } = valueMarkers();
  const tokens = new Tokens([...namespaceMarkers(), ...markers, ...releaseMarkers]);
  const files: ChartFile[] = [];
  for (const { path, objects } of manifestObjects(settings)) {
    const kept: string[] = [];
    for (const o of objects as Obj[]) {
      if (o.kind === 'Namespace') continue; // helm install --namespace ... --create-namespace
      if (o.kind === 'CustomResourceDefinition') {
        // crds/: installed before the templates, never templated, never deleted by Helm.
        files.push({ path: `crds/${o.metadata.name}.yaml`, content: GENERATED + Yaml.stringify(o) });
        continue;
      }
      helmLabels(o);
      if (isCreateOnly(o)) o.metadata.annotations = { ...o.metadata.annotations, 'helm.sh/resource-policy': 'keep' };
      kept.push(guarded(o, tokens.render(Yaml.stringify(tokens.apply(o))), path.startsWith('monitoring/')));
    }
    if (kept.length > 0) files.push({ path: `templates/${path.replace(/^.*\//, '').replace(/^\d+-/, '')}`, content: GENERATED + kept.join('') });
  }
  files.push({ path: 'templates/_helpers.tpl', content: HELPERS });
  files.push({ path: 'templates/api-token-secret.yaml', content: tokenSecret() });
  files.push({
    path: 'templates/NOTES.txt',
    content: `${CHART_NAME} in namespace {{ $.Release.Namespace }} (release {{ $.Release.Name }}).
  kubectl -n {{ $.Release.Namespace }} rollout status deployment/${SERVICE_NAME}
  kubectl -n {{ $.Release.Namespace }} get secret ${TOKEN_SECRET} -o jsonpath='{.data.${TOKEN_KEY}}' | base64 -d
The routing ConfigMap and the token Secret stay after \`helm uninstall\` (resource-policy keep).
`,
  });
  files.push({
    path: 'Chart.yaml',
    content:
      GENERATED +
      Yaml.stringify({
        apiVersion: 'v2',
        name: CHART_NAME,
        description: 'ONNX model serving: the analytics-api inference service, its operator and Redis (generated from the cdk8s app in infra/)',
        type: 'application',
        version: packageVersion,
        appVersion: packageVersion,
      }),
  });
  files.push({ path: 'values.yaml', content: valuesYaml(defaultValues()) });
  files.push({ path: 'values.schema.json', content: `${JSON.stringify(z.toJSONSchema(valuesSchema, { target: 'draft-7' }), null, 2)}\n` });
  return files.sort((a, b) => a.path.localeCompare(b.path));
}
