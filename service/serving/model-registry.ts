import type { FastifyBaseLogger } from 'fastify';
import { sha256Hex } from '../../contract/hashing.ts';
import { MODEL_NAME, compareVersions, isVersionName } from '../../contract/model-names.ts';
import { toCanary, type RolloutSpec } from '../../contract/rollout.ts';
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
  /** Rolled out by the caller instead of promoted (unless it is the model's first version). */
  rollout?: RolloutSpec | undefined;
}

/** A version rolled out against a model's production one (contract/rollout.ts): its share of the traffic, or a shadow. */
export interface CanaryRoute {
  version: string;
  sha256?: string | undefined;
  weight: number;
  mode: 'canary' | 'shadow';
  /** Shadow, regressors: the largest |shadow - stable| counted as agreeing. */
  maxAbsDifference?: number | undefined;
}

/** What the routing says of one model: its version (the stable one) and a canary, if any. */
export interface ModelRouting {
  version: string;
  sha256?: string | undefined;
  canary?: CanaryRoute | undefined;
}

export interface ModelStatus {
  name: string;
  version: string;
  loaded: boolean;
  error?: string;
  canary?: CanaryRoute & { loaded: boolean; error?: string };
}

export interface ModelDescription {
  name: string;
  production_version: string | null;
  versions: Array<VersionMetadata & { production: boolean; loaded: boolean }>;
  history: HistoryEvent[];
}

const keyOf = (name: string, version: string) => `${name}@${version}`;
/** The pool's key of loaded bytes: the same version with other bytes (a restore) is another session. */
const sessionKey = (meta: VersionMetadata) => `${meta.name}@${meta.version}#${meta.sha256.slice(0, 16)}`;

/** A version's wanted bytes: any (undefined) or these (the routing's sha256). */
type Wanted = { sha256?: string | undefined };

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
  /** Model → the version rolled out against its production one. */
  private readonly canaries = new Map<string, CanaryRoute>();
  private readonly canaryErrors = new Map<string, string>();
  private readonly served = new Map<string, ServedModel>();
  private readonly loading = new Map<string, Promise<ServedModel>>();
  private readonly loadErrors = new Map<string, string>();
  /** name@version being deleted: no request brings it back meanwhile. */
  private readonly deleting = new Set<string>();
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

  private async loadProduction(name: string, version: string, wanted: Wanted = {}): Promise<ServedModel | undefined> {
    return this.ensureLoaded(name, version, wanted).catch((err: Error) => {
      this.loadErrors.set(name, err.message);
      this.log.error({ model: name, version, err: err.message }, 'production model failed to load');
      return undefined;
    });
  }

  /**
   * Serves exactly the routed versions (Kubernetes mode: the operator's routing file). Each new
   * version is loaded before it takes over, then the old one is freed; models no longer routed stop serving.
   */
  async applyRouting(routing: Map<string, ModelRouting>): Promise<void> {
    for (const [name, route] of routing) await this.applyModelRoute(name, route);
    for (const [name, version] of [...this.production]) {
      if (routing.has(name)) continue;
      this.production.delete(name);
      const canary = this.canaries.get(name);
      this.canaries.delete(name);
      this.retireVersion(name, version);
      if (canary) this.retireVersion(name, canary.version);
      await this.onModelChanged(name);
    }
    this.routingApplied = true;
  }

  private async applyModelRoute(name: string, route: ModelRouting): Promise<void> {
    const { version, sha256 } = route;
    const previous = this.production.get(name);
    const before = this.canaries.get(name);
    const current = this.served.get(keyOf(name, version));
    let changed = false;
    if (previous !== version || !current || (sha256 !== undefined && current.meta.sha256 !== sha256)) {
      const incoming = await this.loadProduction(name, version, { sha256 });
      this.production.set(name, version);
      if (!incoming) return;
      changed = true;
    }
    await this.setCanary(name, route.canary);
    const canary = this.canaries.get(name);
    changed ||= JSON.stringify(before) !== JSON.stringify(canary);
    // What neither serves nor shadows any more goes, once its requests are done.
    for (const old of [previous, before?.version]) if (old !== undefined && old !== version && old !== canary?.version) this.retireVersion(name, old);
    if (changed) {
      await this.onModelChanged(name);
      this.log.info({ model: name, version, previous, ...(canary ? { canary } : {}) }, 'routing applied');
    }
  }

  /**
   * Rolls `canary` out against the model's production version (its weight of the traffic, or a
   * shadow), loading it first; undefined ends it. A canary that cannot load takes no traffic.
   */
  async setCanary(name: string, canary: CanaryRoute | undefined): Promise<void> {
    const before = this.canaries.get(name);
    // A canary that no longer takes traffic goes once its requests are done (unless it serves now).
    const retireBefore = () => {
      if (before && before.version !== this.canaries.get(name)?.version && before.version !== this.production.get(name))
        this.retireVersion(name, before.version);
    };
    if (!canary) {
      this.canaries.delete(name);
      this.canaryErrors.delete(name);
      retireBefore();
      return;
    }
    try {
      await this.ensureLoaded(name, canary.version, { sha256: canary.sha256 });
      this.canaries.set(name, { ...canary });
      this.canaryErrors.delete(name);
      retireBefore();
    } catch (err) {
      this.canaries.delete(name);
      retireBefore();
      this.canaryErrors.set(name, `${canary.version}: ${(err as Error).message}`);
      this.log.error({ model: name, version: canary.version, err: (err as Error).message }, 'canary version failed to load; it takes no traffic');
    }
  }

  /** The production version of a model, if it has one. */
  productionOf(name: string): string | undefined {
    return this.production.get(name);
  }

  /** Notes a standalone rollout's start or failure in the model's history. */
  async recordRollout(name: string, event: 'rollout_started' | 'rollout_rolled_back', version: string, detail: string): Promise<void> {
    await this.store.withLock(name, () => this.store.appendHistory(name, { time: new Date().toISOString(), event, version, detail }));
  }

  /** The canary of a model, if one is rolled out. */
  canaryOf(name: string): CanaryRoute | undefined {
    return this.canaries.get(name);
  }

  /** The version that gets a copy of a request `served` answered (a shadow rollout), if any. */
  shadowOf(served: ServedModel): { model: ServedModel; maxAbsDifference: number } | undefined {
    const c = this.canaries.get(served.meta.name);
    if (c?.mode !== 'shadow' || c.version === served.meta.version || this.production.get(served.meta.name) !== served.meta.version) return undefined;
    const model = this.served.get(keyOf(served.meta.name, c.version));
    return model && { model, maxAbsDifference: c.maxAbsDifference ?? 0 };
  }

  /** Production models, each with its version and whether it is loaded, and its canary. */
  status(): ModelStatus[] {
    return [...this.production].map(([name, version]) => {
      const canary = this.canaries.get(name);
      const canaryError = this.canaryErrors.get(name);
      return {
        name,
        version,
        loaded: this.served.has(keyOf(name, version)),
        ...(this.loadErrors.has(name) ? { error: this.loadErrors.get(name)! } : {}),
        ...(canary ? { canary: { ...canary, loaded: this.served.has(keyOf(name, canary.version)), ...(canaryError ? { error: canaryError } : {}) } } : {}),
      };
    });
  }

  /** Every production model loaded (and, under the operator, its routing read). */
  ready(): boolean {
    if (this.routingFromOperator && !this.routingApplied) return false;
    return this.status().every((m) => m.loaded);
  }

  /**
   * The loaded session of name@version, loading it if needed. A session of other bytes than the
   * wanted ones (the store's now, or the routing's sha256) is retired and the right bytes loaded:
   * a version restored with new bytes never serves the old weights.
   */
  private async ensureLoaded(name: string, version: string, wanted: Wanted = {}): Promise<ServedModel> {
    const key = keyOf(name, version);
    if (this.deleting.has(key)) throw noVersion(name, version);
    const current = this.served.get(key);
    if (current && (wanted.sha256 === undefined || current.meta.sha256 === wanted.sha256)) {
      current.retired = false;
      return current;
    }
    let pending = this.loading.get(key);
    if (!pending) {
      pending = this.load(name, version, wanted).finally(() => this.loading.delete(key));
      this.loading.set(key, pending);
    }
    return pending;
  }

  private async load(name: string, version: string, wanted: Wanted): Promise<ServedModel> {
    const meta = await this.store.readMetadata(name, version);
    if (!meta) throw noVersion(name, version);
    if (wanted.sha256 !== undefined && meta.sha256 !== wanted.sha256)
      throw new ServiceError('STORE_CORRUPT', `model ${name}@${version} in the store has sha256 ${meta.sha256}, the routing names ${wanted.sha256}`);
    const bytes = await this.store.readModel(meta);
    const key = sessionKey(meta);
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
      onIdle: (s) => this.unloadSoon(s),
    });
    if (this.deleting.has(keyOf(name, version)) || !(await this.store.hasVersion(name, version))) {
      // Deleted while it loaded (a pinned request): it never serves.
      await this.pool.unload(key);
      throw noVersion(name, version);
    }
    const replaced = this.served.get(keyOf(name, version));
    this.served.set(keyOf(name, version), served);
    if (replaced) {
      // The same version with other bytes (restored under it): the old session goes once idle.
      this.log.warn({ model: name, version, was: replaced.meta.sha256, now: meta.sha256 }, 'the store holds other bytes for this version now: reloaded');
      replaced.retired = true;
      if (!replaced.busy) void this.unload(replaced);
    }
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
    if (!served.busy) this.unloadSoon(served);
  }

  /**
   * Frees a retired, idle version after the current turn of the event loop: a request that has
   * just chosen it (its `await resolve()` not yet resumed) takes hold of it first, and is served.
   */
  private unloadSoon(served: ServedModel): void {
    setImmediate(() => void this.unload(served));
  }

  private async unload(served: ServedModel): Promise<void> {
    if (!served.retired || served.busy) return;
    const key = keyOf(served.meta.name, served.meta.version);
    if (this.served.get(key) === served) this.served.delete(key);
    else if (served.unloaded) return;
    served.unloaded = true;
    this.metrics.modelsLoaded.set(this.served.size);
    await this.pool.unload(served.key);
  }

  /**
   * Resolves "name" (the production version, or its canary for the canary's share of requests:
   * by `key` when the request carries one, so a client stays on one side) or "name@version" (a pinned one).
   */
  async resolve(ref: string, key?: string): Promise<ServedModel> {
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
      const canary = this.canaries.get(name);
      if (canary?.mode === 'canary' && toCanary(name, canary.weight, key)) {
        const c = this.served.get(keyOf(name, canary.version));
        if (c) return c;
      }
      const served = this.served.get(keyOf(name, version));
      if (!served)
        throw new ServiceError(
          'MODEL_NOT_LOADED',
          `model ${name}@${version} is not loaded${this.loadErrors.has(name) ? `: ${this.loadErrors.get(name)}` : ' yet'}`,
        );
      return served;
    }
    if (!isVersionName(pinned) || this.deleting.has(keyOf(name, pinned))) throw noVersion(name, pinned);
    // The store's bytes now: a version restored with new bytes loads them, not the old session.
    const meta = await this.store.readMetadata(name, pinned);
    if (!meta) throw noVersion(name, pinned);
    return this.ensureLoaded(name, pinned, { sha256: meta.sha256 });
  }

  /**
   * Validates bytes by loading them in onnxruntime, then stores the version. Nothing is written on
   * failure. The same bytes again (a retry after a lost answer or a crash) get the stored version
   * (`stored: false`), promoted if asked; other bytes under a stored version are a 409.
   */
  async upload(input: UploadInput): Promise<{ meta: VersionMetadata; stored: boolean }> {
    const { name, version } = input;
    return this.store.withLock(name, async () => {
      const existing = await this.store.readMetadata(name, version);
      if (existing) {
        if (existing.sha256 !== sha256Hex(input.bytes))
          throw new ServiceError(
            'VERSION_EXISTS',
            `model ${name} already has version ${version} with other bytes (sha256 ${existing.sha256}); versions are immutable, upload a new version`,
          );
        if (!this.routingFromOperator && input.promote && this.production.get(name) !== version) await this.promoteLocked(name, version);
        return { meta: existing, stored: false };
      }
      const meta = await validateModel(this.pool, input);
      await this.store.writeVersion(meta, input.bytes);
      // With the operator in charge, serving follows its routing, not the upload.
      if (!this.routingFromOperator && ((input.promote && !input.rollout) || !this.production.has(name))) await this.promoteLocked(name, version);
      return { meta, stored: true };
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
      if (this.canaries.get(name)?.version === version)
        throw new ServiceError(
          'VERSION_IN_PRODUCTION',
          `${name}@${version} is being rolled out; abort its rollout (DELETE /api/v1/models/${name}/rollout) first`,
        );
      const key = keyOf(name, version);
      this.deleting.add(key);
      try {
        this.retireVersion(name, version);
        await this.store.deleteVersion(name, version);
      } finally {
        this.deleting.delete(key);
      }
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
    // A model in a canary rollout splits its traffic by the request's key: resolveServing() does that.
    if (this.canaries.get(ref)?.mode === 'canary') return undefined;
    const version = this.production.get(ref);
    // Loaded production versions are served even after an unload through the repository API was undone by a load.
    return version === undefined ? undefined : this.served.get(keyOf(ref, version));
  }

  /** resolve(), refusing a model unloaded through the repository API (its pinned versions too) until it is loaded again. */
  async resolveServing(ref: string, key?: string): Promise<ServedModel> {
    const name = ref.split('@', 1)[0]!;
    if (this.unloaded(name))
      throw new ServiceError('MODEL_NOT_LOADED', `model ${name} is unloaded; load it (POST /v2/repository/models/${name}/load) to serve it again`);
    return this.resolve(ref, key);
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
        // Unless a request pinned to this version loaded it again meanwhile (the same session).
        if (!this.served.has(key) && !this.loading.has(key) && !served.unloaded) {
          served.unloaded = true;
          await this.pool.unload(served.key);
        }
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
