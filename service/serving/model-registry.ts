import type { FastifyBaseLogger } from 'fastify';
import { MODEL_NAME, compareVersions, isVersionName } from '../../contract/model-names.ts';
import { ServiceError } from '../errors.ts';
import type { BatchingOptions } from '../inference/dynamic-batcher.ts';
import type { InferencePool } from '../inference/inference-pool.ts';
import { validateModel, type ModelUpload } from '../inference/model-validation.ts';
import { ServedModel } from '../inference/served-model.ts';
import type { ServiceMetrics } from '../observability/metrics.ts';
import type { HistoryEvent, ModelStore, VersionMetadata } from '../store/model-store.ts';

// Which versions are loaded and which one serves each model. Promote loads the new version into
// every worker, flips the pointer, then frees the old one once its in-flight requests are done:
// no request fails across a swap.

export interface UploadInput extends ModelUpload {
  promote?: boolean;
}

export interface ModelDescription {
  name: string;
  production_version: string | null;
  versions: Array<VersionMetadata & { production: boolean; loaded: boolean }>;
  history: HistoryEvent[];
}

const keyOf = (name: string, version: string) => `${name}@${version}`;

const noModel = (name: string) => new ServiceError('MODEL_NOT_FOUND', `no model named "${name}"`);
const noVersion = (name: string, version: string) => new ServiceError('VERSION_NOT_FOUND', `model ${name} has no version "${version}"`);

export class ModelRegistry {
  /**
   * Who decides which version serves: the store's history (standalone, where promote is a REST
   * call), or the operator's routing (Kubernetes, applied with applyRouting).
   */
  routingFromOperator = false;
  /** Called after a model's serving version changes or a version goes, to purge cached answers. */
  onModelChanged: (name: string) => Promise<void> = async () => {};

  private readonly store: ModelStore;
  private readonly pool: InferencePool;
  private readonly metrics: ServiceMetrics;
  private readonly log: FastifyBaseLogger;
  private readonly batching: BatchingOptions;
  private readonly production = new Map<string, string>();
  private readonly served = new Map<string, ServedModel>();
  private readonly loading = new Map<string, Promise<ServedModel>>();
  private readonly loadErrors = new Map<string, string>();
  /** Kubernetes mode: whether a routing has been applied yet (not ready before). */
  private routingApplied = false;

  constructor(deps: { store: ModelStore; pool: InferencePool; metrics: ServiceMetrics; log: FastifyBaseLogger; batching: BatchingOptions }) {
    this.store = deps.store;
    this.pool = deps.pool;
    this.metrics = deps.metrics;
    this.log = deps.log;
    this.batching = deps.batching;
    // model_serving_info: each production version, read at every scrape (start, promote, routing).
    this.metrics.reportServing(() => this.status());
  }

  /** Loads every model's production version. Failures are logged and reported by /ready. */
  async start(): Promise<void> {
    if (this.routingFromOperator) return;
    for (const name of await this.store.listModels()) {
      const version = await this.store.productionVersion(name);
      if (!version) continue;
      this.production.set(name, version);
      await this.loadProduction(name, version);
    }
  }

  private async loadProduction(name: string, version: string): Promise<ServedModel | undefined> {
    return this.ensureLoaded(name, version).catch((err: Error) => {
      this.loadErrors.set(name, err.message);
      this.log.error({ model: name, version, err: err.message }, 'production model failed to load');
      return undefined;
    });
  }

  /**
   * Serves exactly the routed versions (Kubernetes mode: the operator's routing file). Each new
   * version is loaded before it takes over, then the old one is freed; models no longer routed stop serving.
   */
  async applyRouting(routing: Map<string, string>): Promise<void> {
    for (const [name, version] of routing) {
      if (this.production.get(name) === version && this.served.has(keyOf(name, version))) continue;
      const incoming = await this.loadProduction(name, version);
      const previous = this.production.get(name);
      this.production.set(name, version);
      if (!incoming) continue;
      this.retireVersion(name, previous, version);
      await this.onModelChanged(name);
      this.log.info({ model: name, version, previous }, 'routing applied');
    }
    for (const [name, version] of [...this.production]) {
      if (routing.has(name)) continue;
      this.production.delete(name);
      this.retireVersion(name, version);
      await this.onModelChanged(name);
    }
    this.routingApplied = true;
  }

  /** Production models, each with its version and whether it is loaded. */
  status(): Array<{ name: string; version: string; loaded: boolean; error?: string }> {
    return [...this.production].map(([name, version]) => ({
      name,
      version,
      loaded: this.served.has(keyOf(name, version)),
      ...(this.loadErrors.has(name) ? { error: this.loadErrors.get(name)! } : {}),
    }));
  }

  /** Every production model loaded (and, under the operator, its routing read). */
  ready(): boolean {
    if (this.routingFromOperator && !this.routingApplied) return false;
    return this.status().every((m) => m.loaded);
  }

  private async ensureLoaded(name: string, version: string): Promise<ServedModel> {
    const key = keyOf(name, version);
    const current = this.served.get(key);
    if (current) {
      current.retired = false;
      return current;
    }
    let pending = this.loading.get(key);
    if (!pending) {
      pending = this.load(name, version).finally(() => this.loading.delete(key));
      this.loading.set(key, pending);
    }
    return pending;
  }

  private async load(name: string, version: string): Promise<ServedModel> {
    const meta = await this.store.readMetadata(name, version);
    if (!meta) throw noVersion(name, version);
    const bytes = await this.store.readModel(meta);
    const key = keyOf(name, version);
    const started = performance.now();
    await this.pool.load(key, bytes);
    const seconds = (performance.now() - started) / 1000;
    this.metrics.loadDuration.observe({ model: name, version }, seconds);
    const served = new ServedModel({
      key,
      meta,
      run: (feeds, fetches) => this.pool.run(key, feeds, fetches),
      batching: this.batching,
      metrics: this.metrics,
      onIdle: (s) => void this.unload(s),
    });
    this.served.set(key, served);
    this.metrics.modelsLoaded.set(this.served.size);
    this.loadErrors.delete(name);
    this.log.info({ model: name, version, seconds }, 'model loaded');
    return served;
  }

  /** Frees `version` of a model (unless it is `keep`) once nothing runs on it (now, or when its last request finishes). */
  private retireVersion(name: string, version: string | undefined, keep?: string): void {
    if (version === undefined || version === keep) return;
    const served = this.served.get(keyOf(name, version));
    if (!served) return;
    served.retired = true;
    if (!served.busy) void this.unload(served);
  }

  private async unload(served: ServedModel): Promise<void> {
    if (this.served.get(served.key) !== served || !served.retired || served.busy) return;
    this.served.delete(served.key);
    this.metrics.modelsLoaded.set(this.served.size);
    await this.pool.unload(served.key);
  }

  /** Resolves "name" (the production version) or "name@version" (a pinned one). */
  async resolve(ref: string): Promise<ServedModel> {
    const at = ref.indexOf('@');
    const name = at < 0 ? ref : ref.slice(0, at);
    const pinned = at < 0 ? undefined : ref.slice(at + 1);
    if (!MODEL_NAME.test(name)) throw noModel(name);
    if (pinned === undefined) {
      const version = this.production.get(name);
      if (!version) {
        if ((await this.store.listVersions(name)).length > 0)
          throw new ServiceError('MODEL_NOT_FOUND', `model ${name} has no production version; promote one or pin a version with ${name}@<version>`);
        throw noModel(name);
      }
      const served = this.served.get(keyOf(name, version));
      if (!served)
        throw new ServiceError(
          'MODEL_NOT_LOADED',
          `model ${name}@${version} is not loaded${this.loadErrors.has(name) ? `: ${this.loadErrors.get(name)}` : ' yet'}`,
        );
      return served;
    }
    if (!isVersionName(pinned) || !(await this.store.hasVersion(name, pinned))) throw noVersion(name, pinned);
    return this.ensureLoaded(name, pinned);
  }

  /** Validates bytes by loading them in onnxruntime, then stores the version. Nothing is written on failure. */
  async upload(input: UploadInput): Promise<VersionMetadata> {
    const { name, version } = input;
    return this.store.withLock(name, async () => {
      if (await this.store.hasVersion(name, version))
        throw new ServiceError('VERSION_EXISTS', `model ${name} already has version ${version}; versions are immutable, upload a new version`);
      const meta = await validateModel(this.pool, input);
      await this.store.writeVersion(meta, input.bytes);
      // With the operator in charge, serving follows its routing, not the upload.
      if (!this.routingFromOperator && (input.promote || !this.production.has(name))) await this.promoteLocked(name, version);
      return meta;
    });
  }

  async promote(name: string, version: string): Promise<HistoryEvent> {
    return this.store.withLock(name, () => this.promoteLocked(name, version));
  }

  private async promoteLocked(name: string, version: string): Promise<HistoryEvent> {
    const target = await this.store.readMetadata(name, version);
    if (!target) {
      if ((await this.store.listVersions(name)).length === 0) throw noModel(name);
      throw noVersion(name, version);
    }
    const previous = this.production.get(name);
    const incoming = await this.ensureLoaded(name, version);
    const event: HistoryEvent = {
      time: new Date().toISOString(),
      event: previous !== undefined && compareVersions(version, previous) < 0 ? 'rolled_back' : 'promoted',
      version,
      ...(previous ? { previous } : {}),
    };
    await this.store.appendHistory(name, event);
    this.production.set(name, version);
    incoming.retired = false;
    this.retireVersion(name, previous, version);
    await this.onModelChanged(name);
    return event;
  }

  async deleteVersion(name: string, version: string): Promise<void> {
    await this.store.withLock(name, async () => {
      if (!(await this.store.hasVersion(name, version))) {
        if ((await this.store.listVersions(name)).length === 0) throw noModel(name);
        throw noVersion(name, version);
      }
      if (this.production.get(name) === version)
        throw new ServiceError('VERSION_IN_PRODUCTION', `${name}@${version} is the production version; promote another version first`);
      this.retireVersion(name, version);
      await this.store.deleteVersion(name, version);
      await this.onModelChanged(name);
    });
  }

  async describe(name: string): Promise<ModelDescription> {
    const versions = await this.store.listVersions(name);
    if (versions.length === 0) throw noModel(name);
    const production = this.production.get(name) ?? null;
    return {
      name,
      production_version: production,
      versions: versions.map((v) => ({ ...v, production: v.version === production, loaded: this.served.has(keyOf(name, v.version)) })),
      history: await this.store.history(name),
    };
  }

  async listModels(): Promise<ModelDescription[]> {
    return Promise.all((await this.store.listModels()).map((n) => this.describe(n)));
  }

  // The Open Inference Protocol's model repository extension (open-inference/), appended here.

  /** Models whose production version was unloaded through the repository API: kept in memory only, a restart serves them again. */
  private readonly unloadedModels = new Set<string>();

  /**
   * The loaded production version of `ref` when it is plainly there (the hot path: no promise);
   * undefined for anything else (a pinned version, a model that is not loaded, unloaded or
   * unknown), which resolveServing() then answers.
   */
  servingNow(ref: string): ServedModel | undefined {
    const version = this.production.get(ref);
    // Loaded production versions are served even after an unload through the repository API was undone by a load.
    return version === undefined ? undefined : this.served.get(keyOf(ref, version));
  }

  /** resolve(), refusing a model unloaded through the repository API (its pinned versions too) until it is loaded again. */
  async resolveServing(ref: string): Promise<ServedModel> {
    const name = ref.split('@', 1)[0]!;
    if (this.unloaded(name))
      throw new ServiceError('MODEL_NOT_LOADED', `model ${name} is unloaded; load it (POST /v2/repository/models/${name}/load) to serve it again`);
    return this.resolve(ref);
  }

  /** Whether the model was unloaded through the repository API and not loaded (or promoted) since. */
  unloaded(name: string): boolean {
    const version = this.production.get(name);
    return this.unloadedModels.has(name) && version !== undefined && !this.served.has(keyOf(name, version));
  }

  /** Every model in the store (and every routed one) with its production version and whether that version serves. */
  async repositoryIndex(): Promise<Array<{ name: string; version: string; state: 'READY' | 'UNAVAILABLE'; reason: string }>> {
    const names = [...new Set([...(await this.store.listModels()), ...this.production.keys()])].sort();
    return names.map((name) => {
      const version = this.production.get(name);
      if (version === undefined) {
        const reason = this.routingFromOperator ? 'no imported Production ModelVersion routes it' : 'no production version; promote one';
        return { name, version: '', state: 'UNAVAILABLE' as const, reason };
      }
      if (this.served.has(keyOf(name, version))) return { name, version, state: 'READY' as const, reason: '' };
      const reason = this.unloadedModels.has(name)
        ? 'unloaded'
        : (this.loadErrors.get(name) ?? (this.loading.has(keyOf(name, version)) ? 'loading' : 'not loaded'));
      return { name, version, state: 'UNAVAILABLE' as const, reason };
    });
  }

  /** The repository API's load (standalone): loads a model's production version if needed and serves it again. */
  async repositoryLoad(name: string): Promise<string> {
    const version = await this.repositoryVersion(name, 'load');
    return this.store.withLock(name, async () => {
      this.unloadedModels.delete(name);
      const served = await this.loadProduction(name, version);
      if (!served) throw new ServiceError('MODEL_NOT_LOADED', `model ${name}@${version} failed to load: ${this.loadErrors.get(name) ?? 'unknown error'}`);
      return version;
    });
  }

  /**
   * The repository API's unload (standalone): the production version stops serving at once (its
   * requests answer "not loaded"); it is freed when the requests already running on it are done.
   */
  async repositoryUnload(name: string): Promise<string> {
    const version = await this.repositoryVersion(name, 'unload');
    return this.store.withLock(name, async () => {
      this.unloadedModels.add(name);
      this.loadErrors.set(name, 'unloaded through the model repository API');
      const key = keyOf(name, version);
      const served = this.served.get(key);
      if (served) {
        this.served.delete(key);
        this.metrics.modelsLoaded.set(this.served.size);
        while (served.busy) await new Promise((resolve) => setTimeout(resolve, 5));
        // Unless a request pinned to this version loaded it again meanwhile.
        if (!this.served.has(key) && !this.loading.has(key)) await this.pool.unload(key);
      }
      await this.onModelChanged(name);
      return version;
    });
  }

  private async repositoryVersion(name: string, verb: 'load' | 'unload'): Promise<string> {
    if (this.routingFromOperator)
      throw new ServiceError(
        'MANAGED_BY_KUBERNETES',
        `in Kubernetes mode ModelVersions decide what serves, not ${verb} requests: kubectl apply a ModelVersion with stage Production to serve ${name}, set its stage to Archived or delete it to stop`,
      );
    if (!MODEL_NAME.test(name) || (await this.store.listVersions(name)).length === 0) throw noModel(name);
    const version = this.production.get(name);
    if (version === undefined) throw new ServiceError('MODEL_NOT_FOUND', `model ${name} has no production version; promote one`);
    return version;
  }
}
