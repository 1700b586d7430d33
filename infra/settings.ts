import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { z } from 'zod';
import { figures } from '../contract/figures.ts';
import { NAMESPACE } from '../contract/names.ts';
import { resourcesFromFigures } from './constructs/hardened-deployment.ts';
import { INGRESS_CLASS, KIND_POD_CIDR } from './names.ts';

// What an install may change, in one object: the namespace, each workload's replicas and
// resources, the ingress class and where the alerts' runbooks are. Every chart reads it (the
// namespace reaches the objects, the RBAC subjects, the volumes' claimRefs, the ServiceMonitors,
// the alerts and the dashboard's default), `make synth` takes it from the environment, and the
// Helm chart (infra/helm-chart.ts) turns the same fields into values.

const dnsLabel = z
  .string()
  .max(63)
  .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'must be a lowercase DNS label (a-z, 0-9, "-")');
const quantity = (what: string) =>
  z.string().regex(/^[0-9]+(\.[0-9]+)?(m|k|M|G|T|Ki|Mi|Gi|Ti)?$/, `${what} must be a Kubernetes quantity such as 500m, 2, 128Mi, 4Gi`);
const amounts = z.strictObject({
  cpu: z.union([z.number().positive(), quantity('cpu')]).describe('Cores (2, 0.5) or a quantity ("500m")'),
  memory: quantity('memory').describe('A quantity ("128Mi", "4Gi")'),
});
const resources = z.strictObject({ requests: amounts, limits: amounts }).describe("The container's requests and limits");
const replicas = (max: number) => z.int().min(1).max(max);
/** An address or a CIDR block (IPv4 or IPv6). */
const isAddressOrBlock = (part: string): boolean => {
  const [address, bits, more] = part.split('/');
  if (more !== undefined || !address || !isIP(address)) return false;
  if (bits === undefined) return true;
  const max = isIP(address) === 4 ? 32 : 128;
  return /^[0-9]{1,3}$/.test(bits) && Number(bits) <= max;
};
const proxyList = z
  .string()
  .max(4096)
  // The pattern reaches the Helm chart's values.schema.json; the refine checks each address.
  .regex(/^[0-9A-Fa-f.:/]+( *, *[0-9A-Fa-f.:/]+)*$/, 'must be addresses or CIDR blocks, comma-separated ("10.244.0.0/16,172.31.254.1")')
  .refine((v) => v.split(',').every((p) => isAddressOrBlock(p.trim())), 'must be addresses or CIDR blocks, comma-separated ("10.244.0.0/16,172.31.254.1")');

export const settingsSchema = z.strictObject({
  namespace: dnsLabel.describe('The namespace of every namespaced object; the RBAC subjects, alerts and the dashboard default follow it'),
  service: z.strictObject({
    replicas: replicas(50).describe('Pods of the inference service'),
    resources,
    ingressClassName: z
      .string()
      .regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, 'must be a lowercase DNS subdomain')
      .describe("The Ingress's spec.ingressClassName"),
    trustedProxies: proxyList.describe(
      "TRUSTED_PROXIES: the addresses whose X-Forwarded-For the service believes (the ingress controller's); the default is kind's pod network, where an in-cluster ingress runs",
    ),
  }),
  operator: z.strictObject({
    replicas: replicas(5).describe('Operator replicas (one leads, the others stand by on the Lease)'),
    resources,
  }),
  redis: z.strictObject({ resources }),
  monitoring: z.strictObject({
    runbookBaseUrl: z.string().min(1).describe("Where docs/runbooks.md is browsable; each alert's runbook_url is this plus #<alert anchor>"),
  }),
});

export type Settings = z.infer<typeof settingsSchema>;

/** The manifests' defaults: the specification's figures and the project's names. */
export const defaultSettings: Settings = {
  namespace: NAMESPACE,
  service: {
    replicas: 2,
    resources: resourcesFromFigures(figures.resources),
    ingressClassName: INGRESS_CLASS,
    trustedProxies: KIND_POD_CIDR,
  },
  operator: {
    replicas: 2,
    resources: { requests: { cpu: '100m', memory: '128Mi' }, limits: { cpu: '500m', memory: '512Mi' } },
  },
  redis: {
    resources: { requests: { cpu: '100m', memory: '128Mi' }, limits: { cpu: 1, memory: '1Gi' } },
  },
  monitoring: {
    // The repository's own page; set it to where your copy of docs/runbooks.md is served.
    runbookBaseUrl: 'docs/runbooks.md',
  },
};

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

function merge(base: Json, over: Json): Json {
  const out: Json = { ...base };
  for (const [k, v] of Object.entries(over)) out[k] = isObject(v) && isObject(base[k]) ? merge(base[k], v) : v;
  return out;
}

/** `over` laid on the defaults (any subset of the fields), validated: a bad value names its path. */
export function resolveSettings(over: unknown = {}): Settings {
  if (!isObject(over)) throw new Error('settings must be an object');
  const parsed = settingsSchema.safeParse(merge(defaultSettings as unknown as Json, over));
  if (parsed.success) return parsed.data;
  throw new Error(`Invalid settings:\n${parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`).join('\n')}`);
}

/** The variables `make synth` reads, each a path into the settings. */
const SETTINGS_VARIABLES = {
  NAMESPACE: ['namespace'],
  SERVICE_REPLICAS: ['service', 'replicas'],
  OPERATOR_REPLICAS: ['operator', 'replicas'],
  INGRESS_CLASS: ['service', 'ingressClassName'],
  TRUSTED_PROXIES: ['service', 'trustedProxies'],
  RUNBOOK_BASE_URL: ['monitoring', 'runbookBaseUrl'],
} as const;

/**
 * The settings of `make synth`: SETTINGS_FILE (a JSON file with any subset of the fields, e.g.
 * resources), then the variables above on top. Empty variables count as unset.
 */
export function settingsFromEnvironment(env: NodeJS.ProcessEnv = process.env): Settings {
  let over: Json = {};
  if (env.SETTINGS_FILE) {
    try {
      over = JSON.parse(readFileSync(env.SETTINGS_FILE, 'utf8')) as Json;
    } catch (err) {
      throw new Error(`SETTINGS_FILE ${env.SETTINGS_FILE}: ${(err as Error).message}`);
    }
  }
  for (const [name, path] of Object.entries(SETTINGS_VARIABLES)) {
    const raw = env[name];
    if (raw === undefined || raw === '') continue;
    const value = path[path.length - 1] === 'replicas' ? Number(raw) : raw;
    let node = over;
    for (const key of path.slice(0, -1)) {
      if (!isObject(node[key])) node[key] = {};
      node = node[key] as Json;
    }
    node[path[path.length - 1]] = value;
  }
  return resolveSettings(over);
}
