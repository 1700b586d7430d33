// The model store's layout on disk (DESIGN.md), shared by the service (which reads and writes it),
// the import and backup CLI (which the operator's Jobs run) and the operator (which names paths in
// ModelVersion status and in routing.json):
//   production/<model>/<version>/model.onnx      immutable once written (sha256 recorded)
//   production/<model>/<version>/metadata.json
//   production/<model>/history.jsonl             append-only events
//   .staging/                                    writes in progress, renamed into place
//   .holders/<host>-<pid>.json                   running services, touched every 10 s

export const PRODUCTION_DIR = 'production';
export const STAGING_DIR = '.staging';
export const MODEL_FILE = 'model.onnx';
export const METADATA_FILE = 'metadata.json';
export const HISTORY_FILE = 'history.jsonl';

/** A model's folder, relative to the store root. */
export const modelPath = (model: string) => `${PRODUCTION_DIR}/${model}`;

/** A version's folder, relative to the store root. */
export const versionPath = (model: string, version: string) => `${modelPath(model)}/${version}`;

/** A version's ONNX file, relative to the store root: what ModelVersions and routing.json name. */
export const modelFilePath = (model: string, version: string) => `${versionPath(model, version)}/${MODEL_FILE}`;

/** Running services' claims on the store (service/store/store-holders.ts): `backup restore` refuses while one is fresh. */
export const HOLDERS_DIR = '.holders';
