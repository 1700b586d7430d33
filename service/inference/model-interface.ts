import { ServiceError } from '../errors.ts';
import type { GraphFacts } from './onnx-graph.ts';
import type { ModelSignature, ValueSignature } from './tensor.ts';

// How the predict API talks to one model: which named features go into which input tensor, and
// which outputs give the label, the probabilities or the value. Worked out once, at upload, from
// the model's own signature; stored with the version so loading it again needs no guessing.
// served-model.ts uses it to encode rows and decode outputs.

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
        throw new ServiceError('FEATURES_INVALID', `the model takes one input per feature (${inputNames.join(', ')}); "features" must name exactly those`, [
          ...missing.map((field) => ({ field, message: 'input of the model not named in features' })),
          ...extra.map((field) => ({ field, message: 'not an input of the model' })),
        ]);
      names = features;
    } else names = inputNames;
    input = { mode: 'per_feature', dtype };
  }
  const seen = new Set<string>();
  const duplicates = new Set(names.filter((n) => seen.size === seen.add(n).size));
  if (duplicates.size)
    throw new ServiceError(
      'FEATURES_INVALID',
      `feature names must be unique; repeated: ${[...duplicates].slice(0, 10).join(', ')}${duplicates.size > 10 ? ` and ${duplicates.size - 10} more` : ''}`,
    );

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
