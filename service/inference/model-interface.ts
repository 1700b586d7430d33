import { listSome, ServiceError } from '../errors.ts';
import type { GraphFacts } from './onnx-graph.ts';
import type { ModelSignature, PlainTensor, TensorType, ValueSignature } from './tensor.ts';

// How the predict API talks to one model: which named features go into which input tensor, and
// which outputs give the label, the probabilities or the value. Worked out once, at upload, from
// the model's own signature; stored with the version so loading it again needs no guessing.
// encodeRows and decodeOutputs below turn rows into input tensors and output tensors into
// predictions, checking that the model answered one finite prediction per row.

/** The most features a model may take (the API's own limit on feature names). */
export const MAX_FEATURES = 100_000;

export interface ModelInterface {
  task: 'classification' | 'regression';
  features: string[];
  input: { mode: 'tensor'; name: string; dtype: 'float32' | 'float64' } | { mode: 'per_feature'; dtype: 'float32' | 'float64' };
  outputs: { label?: string; probabilities?: string; value?: string };
  classLabels?: Array<number | string>;
}

export interface Prediction {
  /** The predicted label when it is numeric, the class index for string labels, or the regressor's value. */
  prediction: number;
  /** The predicted class's probability; null for regressors (they have none). */
  confidence: number | null;
  /** A string class label. */
  label?: string;
  probabilities?: number[];
}

const FLOAT_TYPES = new Set(['float32', 'float64']);
const LABEL_TYPES = new Set(['int64', 'int32', 'string']);

const isDynamic = (d: number | string | undefined) => d === undefined || typeof d === 'string' || d < 0;

function invalid(message: string): never {
  throw new ServiceError('INVALID_MODEL', message);
}

/** Derives the interface; `features` are the uploader's ordered names, if given. */
export function describeModel(signature: ModelSignature, facts: GraphFacts, features?: string[]): ModelInterface {
  const nonTensor = signature.outputs.filter((o) => !o.isTensor).map((o) => o.name);
  if (nonTensor.length > 0) invalid(`outputs ${nonTensor.join(', ')} are not tensors (sequences or maps); export the model with tensor outputs`);
  if (signature.inputs.length === 0) invalid('the model has no inputs');
  for (const i of signature.inputs) {
    if (!i.isTensor || !FLOAT_TYPES.has(String(i.type)))
      invalid(`input "${i.name}" is ${i.type ?? 'not a tensor'}; the predict API feeds float or double tensors`);
  }
  const dtypes = new Set(signature.inputs.map((i) => i.type as 'float32' | 'float64'));
  if (dtypes.size > 1) invalid('the inputs mix float and double tensors; export them with one type');
  const dtype = [...dtypes][0]!;

  let input: ModelInterface['input'];
  let names: string[];
  if (signature.inputs.length === 1) {
    // One [batch, features] input.
    const only = signature.inputs[0]!;
    const width = only.shape?.[1];
    if ((only.shape?.length ?? 0) !== 2) invalid(`input "${only.name}" has shape [${only.shape?.join(', ')}]; expected [batch, features]`);
    // Before any per-feature work: a 92-byte model can claim 300 million features.
    if (typeof width === 'number' && width > MAX_FEATURES)
      invalid(`input "${only.name}" takes ${width.toLocaleString('en-US')} features; the API takes at most ${MAX_FEATURES.toLocaleString('en-US')}`);
    if (features) {
      if (!isDynamic(width) && features.length !== width)
        throw new ServiceError('FEATURES_INVALID', `the model's input "${only.name}" takes ${width} features, but ${features.length} feature names were given`);
      names = features;
    } else if (isDynamic(width)) {
      throw new ServiceError('FEATURES_INVALID', `input "${only.name}" has a dynamic feature dimension; give the ordered feature names in "features"`);
    } else {
      names = width === 1 ? [only.name] : Array.from({ length: width as number }, (_, i) => `f${i}`);
    }
    input = { mode: 'tensor', name: only.name, dtype };
  } else {
    // One input per feature ([batch, 1] each), named by the feature.
    if (signature.inputs.length > MAX_FEATURES)
      invalid(`the model has ${signature.inputs.length} inputs; the API takes at most ${MAX_FEATURES.toLocaleString('en-US')} features`);
    for (const i of signature.inputs) {
      const shape = i.shape ?? [];
      if (shape.length > 2 || (shape.length === 2 && !isDynamic(shape[1]) && shape[1] !== 1))
        invalid(`input "${i.name}" has shape [${shape.join(', ')}]; per-feature inputs must be [batch, 1] or [batch]`);
    }
    const inputNames = signature.inputs.map((i) => i.name);
    if (features) {
      const given = new Set(features);
      const inputs = new Set(inputNames);
      const missing = inputNames.filter((n) => !given.has(n));
      const extra = features.filter((n) => !inputs.has(n));
      if (missing.length || extra.length || features.length !== inputNames.length)
        throw new ServiceError('FEATURES_INVALID', `the model takes one input per feature (${listSome(inputNames)}); "features" must name exactly those`, [
          ...missing.slice(0, 20).map((field) => ({ field, message: 'input of the model not named in features' })),
          ...extra.slice(0, 20).map((field) => ({ field, message: 'not an input of the model' })),
        ]);
      names = features;
    } else names = inputNames;
    input = { mode: 'per_feature', dtype };
  }
  const seen = new Set<string>();
  const duplicates = new Set(names.filter((n) => seen.size === seen.add(n).size));
  if (duplicates.size) throw new ServiceError('FEATURES_INVALID', `feature names must be unique; repeated: ${listSome([...duplicates])}`);

  const label = signature.outputs.find((o) => LABEL_TYPES.has(String(o.type)));
  const floats = signature.outputs.filter((o) => FLOAT_TYPES.has(String(o.type)));
  if (label) {
    // [batch, classes]; a ZipMap's input tensor carries no shape (rank 0 here).
    const probabilities = floats.find((o) => [0, 2].includes(o.shape?.length ?? 0));
    return {
      task: 'classification',
      features: names,
      input,
      outputs: { label: label.name, ...(probabilities ? { probabilities: probabilities.name } : {}) },
      ...(facts.classLabels ? { classLabels: facts.classLabels } : {}),
    };
  }
  const value = floats[0];
  if (!value) invalid(`no output gives a label (int64/string) or a value (float); outputs: ${describeValues(signature.outputs)}`);
  return { task: 'regression', features: names, input, outputs: { value: value.name } };
}

const describeValues = (vs: ValueSignature[]) => vs.map((v) => `${v.name}: ${v.type}[${v.shape?.join(',') ?? ''}]`).join('; ');

/** A row of input values cannot be fed, or an output does not make a prediction per row. */
export class OutputError extends Error {}

/** Rows (in the model's feature order) as its input tensors. */
export function encodeRows(model: ModelInterface, rows: number[][]): Record<string, PlainTensor> {
  const Typed = model.input.dtype === 'float64' ? Float64Array : Float32Array;
  const n = rows.length;
  const width = model.features.length;
  const type: TensorType = model.input.dtype;
  if (model.input.mode === 'tensor') {
    const data = new Typed(n * width);
    for (let r = 0; r < n; r++) data.set(rows[r]!, r * width);
    return { [model.input.name]: { type, dims: [n, width], data } };
  }
  const feeds: Record<string, PlainTensor> = {};
  model.features.forEach((name, c) => {
    const data = new Typed(n);
    for (let r = 0; r < n; r++) data[r] = rows[r]![c]!;
    feeds[name] = { type, dims: [n, 1], data };
  });
  return feeds;
}

/** The output tensors of `n` rows as predictions; OutputError when they are not one finite answer per row. */
export function decodeOutputs(model: ModelInterface, outputs: Record<string, PlainTensor>, n: number): Prediction[] {
  const result: Prediction[] = [];
  const tensor = (name: string) => {
    const t = outputs[name];
    if (!t) throw new OutputError(`output "${name}" is missing`);
    if (t.dims[0] !== n || t.data.length % n !== 0)
      throw new OutputError(`output "${name}" has shape [${t.dims.join(', ')}] for ${n} rows: not one answer per row`);
    return t;
  };
  const finite = (v: number, what: string) => {
    if (!Number.isFinite(v)) throw new OutputError(`the model answered ${v} for ${what}`);
    return v;
  };
  if (model.task === 'regression') {
    const v = tensor(model.outputs.value!);
    const width = v.data.length / n;
    for (let r = 0; r < n; r++) result.push({ prediction: finite(Number(v.data[r * width]), 'the value'), confidence: null });
    return result;
  }
  const labels = tensor(model.outputs.label!);
  if (labels.data.length !== n) throw new OutputError(`output "${model.outputs.label}" has ${labels.data.length} labels for ${n} rows`);
  const probs = model.outputs.probabilities ? tensor(model.outputs.probabilities) : undefined;
  const classes = probs ? probs.data.length / n : 0;
  if (probs && model.classLabels && classes !== model.classLabels.length)
    throw new OutputError(`output "${model.outputs.probabilities}" has ${classes} probabilities per row for ${model.classLabels.length} classes`);
  const probData = probs?.data as ArrayLike<number> | undefined;
  for (let r = 0; r < n; r++) {
    const raw = labels.data[r]!;
    const label = typeof raw === 'bigint' ? Number(raw) : raw;
    // One pass over the row's probabilities: checked, copied and the largest found.
    let row: number[] | undefined;
    let largest = -1;
    if (probData) {
      row = new Array<number>(classes);
      for (let c = 0, at = r * classes; c < classes; c++, at++) {
        const p = finite(Number(probData[at]), 'a probability');
        row[c] = p;
        if (largest < 0 || p > row[largest]!) largest = c;
      }
    }
    let index = model.classLabels ? model.classLabels.indexOf(label) : -1;
    if (index < 0 && row) index = largest;
    const confidence = row && index >= 0 ? row[index]! : null;
    if (typeof label === 'string') {
      if (index < 0) throw new OutputError(`the model answered the label "${label}", which is not one of its classes`);
      result.push({ prediction: index, confidence, label, ...(row ? { probabilities: row } : {}) });
    } else result.push({ prediction: finite(label, 'the label'), confidence, ...(row ? { probabilities: row } : {}) });
  }
  return result;
}
