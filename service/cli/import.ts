import { readFile, writeFile } from 'node:fs/promises';
import { isAbsolute, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import type { CliCommand, CliIO } from './cli.ts';
import { configSchema } from '../config.ts';
import { ServiceError } from '../errors.ts';
import { InferencePool } from '../inference/inference-pool.ts';
import { sha256Hex } from '../../contract/hashing.ts';
import { IMPORT_EXIT_REFUSED, IMPORT_EXIT_USAGE, TERMINATION_MESSAGE_BYTES, type ImportResult } from '../../contract/import-result.ts';
import { MODEL_NAME, MODEL_NAME_RULE, VERSION_NAME_RULE, isVersionName } from '../../contract/model-names.ts';
import { modelFilePath } from '../../contract/store-layout.ts';
import { validateModel } from '../inference/model-validation.ts';
import { ModelStore, type VersionMetadata } from '../store/model-store.ts';

// `analytics-api import`: puts one model version into the model store the way an upload to the
// service does, for the operator's import Jobs. It reads the ONNX file (--file, a ConfigMap mounted
// as a volume; --url; or --store-path, a file already in the store, verified in place), checks
// --sha256, validates the bytes by loading them exactly as the service does (validateModel in inference/model-validation.ts:
// onnxruntime in a worker, ZipMap handling, feature mapping), then writes the version atomically
// (ModelStore.writeVersion). The same version with the same sha256 already there is success (a Job
// may run twice); anything else that would change a stored version fails. The result, or the error,
// goes to --result-file as one JSON object (the Job's termination message, read by the operator).

const HELP = `usage: analytics-api import --model NAME --version VERSION (--file PATH | --url URL | --store-path PATH) [options]

Validates an ONNX model as the service would and stores it as NAME@VERSION in the model store.

sources (exactly one):
  --file PATH           a local file (the import Job mounts a ConfigMap entry here)
  --url URL             downloaded with GET (http or https)
  --store-path PATH     a file inside the model store (relative to --models-dir), verified in
                        place; stored under production/NAME/VERSION/ when it lives elsewhere

options:
  --sha256 HEX          expected sha256 of the file; a mismatch fails the import
  --features JSON       ordered input feature names, a JSON array (default: the model's own)
  --metadata JSON       free-form metadata stored with the version, a JSON object
  --models-dir DIR      model store root, the folder holding production/ (env MODELS_DIR,
                        default ${configSchema.shape.MODELS_DIR.parse(undefined)})
  --result-file PATH    also write the result (or {"error": ...}) there as JSON; the import Job
                        passes /dev/termination-log
  --timeout-seconds N   --url download deadline (default 300)
  --max-bytes N         refuse files larger than this (default 1 GiB)
  --json                print the result as JSON on stdout
  -h, --help            this help

Exit status: 0 stored (or already stored with the same sha256), 1 failure (a download or read; worth a
retry), 2 bad usage, 3 the file refused (sha256 mismatch, not a model the service can serve, too
large, another file already stored as that version), 130 interrupted.`;

const OPTIONS = {
  model: { type: 'string' },
  version: { type: 'string' },
  file: { type: 'string' },
  url: { type: 'string' },
  'store-path': { type: 'string' },
  sha256: { type: 'string' },
  features: { type: 'string' },
  metadata: { type: 'string' },
  'models-dir': { type: 'string' },
  'result-file': { type: 'string' },
  'timeout-seconds': { type: 'string' },
  'max-bytes': { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** A failure with its exit code: 1, 2 (usage), 3 (the file refused) or 130 (interrupted). */
class ImportError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode = 1) {
    super(message);
    this.exitCode = exitCode;
  }
}

const usage = (message: string) => new ImportError(message, IMPORT_EXIT_USAGE);
/** The file itself is refused: importing it again cannot succeed. */
const refused = (message: string) => new ImportError(message, IMPORT_EXIT_REFUSED);

interface Settings {
  model: string;
  version: string;
  source: { kind: 'file' | 'url' | 'store-path'; value: string };
  sha256?: string;
  features?: string[];
  metadata?: Record<string, unknown>;
  modelsDir: string;
  timeoutMs: number;
  maxBytes: number;
}

type Values = { [K in keyof typeof OPTIONS]?: (typeof OPTIONS)[K]['type'] extends 'string' ? string : boolean };

function settings(values: Values, env: NodeJS.ProcessEnv): Settings {
  const model = values.model;
  const version = values.version;
  if (!model) throw usage('--model is required');
  if (!version) throw usage('--version is required');
  if (!MODEL_NAME.test(model)) throw usage(`--model "${model}": ${MODEL_NAME_RULE}`);
  if (!isVersionName(version)) throw usage(`--version "${version}": ${VERSION_NAME_RULE}`);
  const sources = (['file', 'url', 'store-path'] as const).filter((k) => values[k] !== undefined);
  if (sources.length !== 1)
    throw usage(`give exactly one of --file, --url, --store-path (got ${sources.length === 0 ? 'none' : sources.map((s) => `--${s}`).join(', ')})`);
  const kind = sources[0]!;
  const value = values[kind]!;
  if (kind === 'url' && !/^https?:\/\//.test(value)) throw usage(`--url "${value}": only http:// and https:// URLs`);
  const expected = values.sha256?.toLowerCase();
  if (expected !== undefined && !/^[a-f0-9]{64}$/.test(expected)) throw usage('--sha256 must be 64 hexadecimal characters');
  let features: string[] | undefined;
  if (values.features !== undefined) {
    try {
      features = JSON.parse(values.features) as string[];
    } catch {
      throw usage('--features must be a JSON array of names, e.g. \'["a","b"]\'');
    }
    if (!Array.isArray(features) || !features.every((x) => typeof x === 'string' && x.length > 0))
      throw usage('--features must be a JSON array of non-empty strings');
  }
  let metadata: Record<string, unknown> | undefined;
  if (values.metadata !== undefined) {
    try {
      metadata = JSON.parse(values.metadata) as Record<string, unknown>;
    } catch {
      throw usage('--metadata must be a JSON object');
    }
    if (!metadata || typeof metadata !== 'object' || Array.isArray(metadata)) throw usage('--metadata must be a JSON object');
  }
  const number = (name: 'timeout-seconds' | 'max-bytes', def: number) => {
    const text = values[name];
    if (text === undefined) return def;
    if (!/^\d+$/.test(text) || Number(text) <= 0) throw usage(`--${name} must be a positive whole number`);
    return Number(text);
  };
  const modelsDir = values['models-dir'] ?? configSchema.shape.MODELS_DIR.parse(env.MODELS_DIR || undefined);
  return {
    model,
    version,
    source: { kind, value },
    sha256: expected,
    features,
    metadata,
    modelsDir,
    timeoutMs: number('timeout-seconds', 300) * 1000,
    maxBytes: number('max-bytes', 1024 ** 3),
  };
}

async function download(url: string, s: Settings, signal: AbortSignal): Promise<Uint8Array> {
  let res: Response;
  try {
    res = await fetch(url, { signal: AbortSignal.any([signal, AbortSignal.timeout(s.timeoutMs)]), redirect: 'follow' });
  } catch (err) {
    if (signal.aborted) throw new ImportError('interrupted', 130);
    const e = err as Error & { cause?: { code?: string; message?: string } };
    throw new ImportError(
      `downloading ${url} failed: ${e.name === 'TimeoutError' ? `no answer within ${s.timeoutMs / 1000} s` : (e.cause?.code ?? e.cause?.message ?? e.message)}`,
    );
  }
  if (!res.ok) throw new ImportError(`downloading ${url} failed: HTTP ${res.status} ${res.statusText}`);
  const declared = Number(res.headers.get('content-length') ?? NaN);
  if (declared > s.maxBytes) throw refused(`${url} is ${declared} bytes, more than --max-bytes ${s.maxBytes}`);
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of res.body ?? []) {
    size += chunk.length;
    if (size > s.maxBytes) throw refused(`${url} is more than --max-bytes ${s.maxBytes} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/** A --store-path inside the store, never outside it. */
function storeFile(modelsDir: string, path: string): string {
  const root = resolve(modelsDir);
  const full = resolve(root, path);
  const rel = relative(root, full);
  if (isAbsolute(path) || rel === '' || rel.startsWith('..') || isAbsolute(rel))
    throw usage(`--store-path "${path}" must be a file inside the model store ${root}`);
  return full;
}

async function readSource(s: Settings, signal: AbortSignal): Promise<Uint8Array> {
  const { kind, value } = s.source;
  if (kind === 'url') return download(value, s, signal);
  const path = kind === 'file' ? value : storeFile(s.modelsDir, value);
  try {
    const bytes = await readFile(path);
    if (bytes.length > s.maxBytes) throw refused(`${path} is ${bytes.length} bytes, more than --max-bytes ${s.maxBytes}`);
    return bytes;
  } catch (err) {
    if (err instanceof ImportError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    throw new ImportError(`cannot read ${path}: ${code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
  }
}

function resultOf(meta: VersionMetadata, _store: ModelStore, alreadyPresent: boolean): ImportResult {
  return {
    model: meta.name,
    version: meta.version,
    path: modelFilePath(meta.name, meta.version),
    sha256: meta.sha256,
    sizeBytes: meta.sizeBytes,
    features: meta.features,
    signature: { ...meta.signature },
    alreadyPresent,
  };
}

async function importVersion(s: Settings, signal: AbortSignal): Promise<ImportResult> {
  const bytes = await readSource(s, signal);
  const actual = sha256Hex(bytes);
  if (s.sha256 && actual !== s.sha256) throw refused(`sha256 mismatch: expected ${s.sha256}, the file has ${actual}`);
  if (signal.aborted) throw new ImportError('interrupted', 130);

  const store = new ModelStore(resolve(s.modelsDir));
  const canonical = storeFile(store.root, modelFilePath(s.model, s.version));
  const stored = await store.readMetadata(s.model, s.version);
  const conflict = (meta: VersionMetadata) =>
    refused(
      `model ${s.model} already has version ${s.version} with sha256 ${meta.sha256}; this file has ${actual}. Versions are immutable: import it as a new version`,
    );
  if (stored && stored.sha256 !== actual) throw conflict(stored);
  if (!stored && s.source.kind === 'store-path' && storeFile(store.root, s.source.value) === canonical)
    throw refused(
      `${s.source.value} has no metadata.json beside it: it was not written by the service; upload it through the API, or import it with --file or --url`,
    );

  // Validated exactly as an upload is: parsed, loaded by onnxruntime in a worker, features mapped.
  const pool = new InferencePool({ size: 1 });
  try {
    let meta: VersionMetadata;
    try {
      const source = `--${s.source.kind} ${s.source.value}`;
      meta = await validateModel(pool, { name: s.model, version: s.version, bytes, features: s.features, metadata: s.metadata, source });
    } catch (err) {
      if (err instanceof ServiceError) throw refused(`not a model the service can serve: ${err.message}`);
      throw err;
    }
    if (stored) {
      await store.readModel(stored); // the stored bytes are whole: their sha256 matches the record
      return resultOf(stored, store, true);
    }
    if (signal.aborted) throw new ImportError('interrupted', 130);
    try {
      await store.withLock(s.model, () => store.writeVersion(meta, bytes));
      return resultOf(meta, store, false);
    } catch (err) {
      // Another import of the same version won the race: fine when it stored the same bytes.
      if (!(err instanceof ServiceError && err.code === 'VERSION_EXISTS')) throw err;
      const winner = await store.readMetadata(s.model, s.version);
      if (!winner) throw err;
      if (winner.sha256 !== actual) throw conflict(winner);
      return resultOf(winner, store, true);
    }
  } finally {
    await pool.close();
  }
}

async function writeResult(path: string | undefined, value: unknown): Promise<void> {
  if (!path) return;
  let text = JSON.stringify(value);
  if (Buffer.byteLength(text) > TERMINATION_MESSAGE_BYTES && value && typeof value === 'object' && 'signature' in value) {
    text = JSON.stringify({ ...value, signature: undefined });
  }
  await writeFile(path, text);
}

/** `analytics-api import …` (argv: the arguments after "import"); resolves to the exit code. */
export async function runImport(argv: string[], io: CliIO): Promise<number> {
  let resultFile: string | undefined;
  try {
    let parsed;
    try {
      parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: false, strict: true });
    } catch (err) {
      throw usage((err as Error).message);
    }
    const values = parsed.values as Values;
    if (values.help) {
      io.stdout(`${HELP}\n`);
      return 0;
    }
    resultFile = values['result-file'];
    const s = settings(values, io.env);
    const started = performance.now();
    const result = await importVersion(s, io.signal);
    await writeResult(resultFile, result);
    if (values.json) io.stdout(`${JSON.stringify(result, null, 2)}\n`);
    else
      io.stdout(
        `${result.alreadyPresent ? 'already stored' : 'imported'} ${result.model}@${result.version}: ${result.path} in ${resolve(s.modelsDir)}, ` +
          `sha256 ${result.sha256}, ${result.sizeBytes} bytes, ${result.features.length} features, ${((performance.now() - started) / 1000).toFixed(2)} s\n`,
      );
    return 0;
  } catch (err) {
    const message = String((err as Error)?.message ?? err).replace(/\s*\n\s*/g, '; ');
    const exitCode = err instanceof ImportError ? err.exitCode : 1;
    io.stderr(`analytics-api import: ${message}${exitCode === 2 ? ' (see analytics-api import --help)' : ''}\n`);
    await writeResult(resultFile, { error: message }).catch(() => {});
    return exitCode;
  }
}

export const importCommand: CliCommand = {
  summary: "validate an ONNX model as the service would and store it as a version (the operator's import Jobs)",
  run: (args, io) => runImport(args, io),
};
