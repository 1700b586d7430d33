import { ServiceError } from '../errors.ts';
import type { PlainTensor, TensorData, TensorType, ValueSignature } from '../inference/tensor.ts';

// Tensors of the Open Inference Protocol (KServe V2 / Triton): its datatypes ↔ onnxruntime's,
// JSON data (flat or nested, row-major) and Triton's binary tensor data extension (raw
// little-endian bytes; BYTES elements each prefixed by a 4-byte length).

const V2_TO_ORT = {
  BOOL: 'bool',
  UINT8: 'uint8',
  UINT16: 'uint16',
  UINT32: 'uint32',
  UINT64: 'uint64',
  INT8: 'int8',
  INT16: 'int16',
  INT32: 'int32',
  INT64: 'int64',
  FP16: 'float16',
  FP32: 'float32',
  FP64: 'float64',
  BYTES: 'string',
} as const satisfies Record<string, TensorType>;

export type V2Datatype = keyof typeof V2_TO_ORT;
const ORT_TO_V2 = Object.fromEntries(Object.entries(V2_TO_ORT).map(([k, v]) => [v, k])) as Record<TensorType, V2Datatype>;

export function v2Datatype(ortType: string | undefined): V2Datatype | undefined {
  return ORT_TO_V2[ortType as TensorType];
}

const TYPED: Record<
  Exclude<TensorType, 'string'>,
  { new (n: number): TensorData; BYTES_PER_ELEMENT: number; new (buf: ArrayBufferLike, offset: number, length: number): TensorData }
> = {
  bool: Uint8Array,
  uint8: Uint8Array,
  uint16: Uint16Array,
  uint32: Uint32Array,
  uint64: BigUint64Array,
  int8: Int8Array,
  int16: Int16Array,
  int32: Int32Array,
  int64: BigInt64Array,
  // Node 24 has Float16Array, and onnxruntime then expects it for float16.
  float16: (globalThis as unknown as { Float16Array: unknown }).Float16Array,
  float32: Float32Array,
  float64: Float64Array,
} as never;

/** Shape as the protocol shows it: -1 for a dynamic dimension. */
export function v2Shape(shape: Array<number | string> | undefined): number[] {
  return (shape ?? []).map((d) => (typeof d === 'number' && d >= 0 ? d : -1));
}

const elementCount = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

/**
 * Nested (row-major) or flat data as one flat list, without recursion: arrays nested deeper than
 * the tensor's rank are refused (15,000 levels used to overflow the stack), and so is more data
 * than the shape holds.
 */
function flatten(data: unknown, maxDepth: number, maxElements: number, fail: Fail): unknown[] {
  const out: unknown[] = [];
  const stack: Array<{ items: unknown[]; next: number }> = [{ items: Array.isArray(data) ? data : [data], next: 0 }];
  while (stack.length > 0) {
    const top = stack[stack.length - 1]!;
    if (top.next >= top.items.length) {
      stack.pop();
      continue;
    }
    const item = top.items[top.next++];
    if (Array.isArray(item)) {
      if (stack.length >= maxDepth) fail(`data is nested more than ${maxDepth} deep for a tensor of rank ${maxDepth}`);
      stack.push({ items: item, next: 0 });
    } else if (out.push(item) > maxElements) fail(`data holds more than the ${maxElements} elements of its shape`);
  }
  return out;
}

export interface V2InputRequest {
  name: string;
  shape: number[];
  datatype: string;
  data?: unknown;
  parameters?: Record<string, unknown>;
}

type Fail = (message: string) => never;

/** Checks a request input's datatype and shape against the model's input: its tensor type and element count. */
function checkInput(input: V2InputRequest, expected: ValueSignature): { type: TensorType; count: number; fail: Fail } {
  const fail: Fail = (message) => {
    throw new ServiceError('VALIDATION_FAILED', `input "${input.name}": ${message}`, [{ field: input.name, message }]);
  };
  const want = v2Datatype(expected.type);
  if (!want) fail(`the model's input has type ${expected.type}, which this API cannot feed`);
  if (input.datatype !== want) fail(`datatype ${input.datatype} given, the model expects ${want}`);
  const modelShape = v2Shape(expected.shape);
  if (input.shape.length !== modelShape.length) fail(`shape [${input.shape}] has rank ${input.shape.length}, the model expects [${modelShape}]`);
  input.shape.forEach((d, i) => {
    if (!Number.isInteger(d) || d < 0) fail(`shape [${input.shape}] must hold non-negative integers`);
    if (modelShape[i]! >= 0 && modelShape[i] !== d) fail(`shape [${input.shape}] does not fit the model's [${modelShape}] at dimension ${i}`);
  });
  return { type: V2_TO_ORT[want!], count: elementCount(input.shape), fail };
}

/** Checks one request input against the model's input and turns it into a tensor (JSON data, or raw bytes). */
export function decodeInput(input: V2InputRequest, expected: ValueSignature, binary: Uint8Array | undefined): PlainTensor {
  const { type, count, fail } = checkInput(input, expected);
  if (binary) return { type, dims: input.shape, data: decodeBinary(type, binary, count, fail) };
  if (input.data === undefined) fail('has no data (and no binary_data_size)');
  const flat = flatten(input.data, Math.max(1, input.shape.length), count, fail);
  if (flat.length !== count) fail(`shape [${input.shape}] holds ${count} elements, data has ${flat.length}`);
  return { type, dims: input.shape, data: decodeJson(type, flat, fail) };
}

/** gRPC's typed tensor data (InferTensorContents): one repeated field per kind of element. */
export interface TensorContents {
  bool_contents?: boolean[];
  int_contents?: number[];
  int64_contents?: Array<string | number>;
  uint_contents?: number[];
  uint64_contents?: Array<string | number>;
  fp32_contents?: number[];
  fp64_contents?: number[];
  bytes_contents?: Uint8Array[];
}

/** The InferTensorContents field that carries each tensor type (none for float16: raw bytes only, as in Triton). */
const CONTENTS_FIELD: Record<TensorType, keyof TensorContents | undefined> = {
  bool: 'bool_contents',
  int8: 'int_contents',
  int16: 'int_contents',
  int32: 'int_contents',
  int64: 'int64_contents',
  uint8: 'uint_contents',
  uint16: 'uint_contents',
  uint32: 'uint_contents',
  uint64: 'uint64_contents',
  float16: undefined,
  float32: 'fp32_contents',
  float64: 'fp64_contents',
  string: 'bytes_contents',
};

/** Checks one gRPC input given as typed contents and turns it into a tensor. */
export function decodeContents(input: V2InputRequest, expected: ValueSignature, contents: TensorContents | undefined): PlainTensor {
  const { type, count, fail } = checkInput(input, expected);
  const field = CONTENTS_FIELD[type];
  if (!field) fail(`${input.datatype} data goes in raw_input_contents`);
  const filled = Object.entries(contents ?? {}).filter(([, v]) => Array.isArray(v) && v.length > 0);
  const values = (contents?.[field!] ?? []) as unknown[];
  if (filled.some(([k]) => k !== field)) fail(`${input.datatype} data goes in contents.${field}, the request fills ${filled.map(([k]) => k).join(', ')}`);
  if (values.length !== count) fail(`shape [${input.shape}] holds ${count} elements, contents.${field} has ${values.length}`);
  const dims = input.shape;
  if (type === 'string') return { type, dims, data: (values as Uint8Array[]).map((b) => Buffer.from(b).toString('utf8')) };
  if (type === 'bool') return { type, dims, data: Uint8Array.from(values as boolean[], (v) => (v ? 1 : 0)) };
  const Typed = TYPED[type];
  const out = new Typed(count) as TensorData;
  const big = type === 'int64' || type === 'uint64';
  for (let i = 0; i < count; i++) {
    const v = values[i] as number | string;
    if (big) {
      (out as BigInt64Array)[i] = BigInt(v);
      continue;
    }
    (out as Float64Array)[i] = v as number;
    // int_contents and uint_contents are 32 bits wide: an INT8 or UINT16 input must hold the value.
    if (!type.startsWith('float') && (out as Float64Array)[i] !== v) fail(`element ${i} (${v}) does not fit ${input.datatype}`);
  }
  return { type, dims, data: out };
}

/** A tensor as gRPC typed contents (undefined for float16, which travels as raw bytes only). */
export function contentsOf(t: PlainTensor): TensorContents | undefined {
  const field = CONTENTS_FIELD[t.type];
  if (!field) return undefined;
  if (t.type === 'string') return { bytes_contents: (t.data as string[]).map((s) => Buffer.from(s, 'utf8')) };
  if (t.type === 'bool') return { bool_contents: Array.from(t.data as Uint8Array, (v) => v !== 0) };
  if (t.data instanceof BigInt64Array || t.data instanceof BigUint64Array) return { [field]: Array.from(t.data, String) };
  return { [field]: Array.from(t.data as ArrayLike<number>) };
}

/** The largest finite values of the narrower float types: beyond them a value would be Infinity. */
const FLOAT_MAX = { float32: 3.4028234663852886e38, float16: 65504 };

function decodeJson(type: TensorType, flat: unknown[], fail: Fail): TensorData {
  if (type === 'string') {
    return flat.map((v, i) => (typeof v === 'string' ? v : fail(`element ${i} must be a string`)));
  }
  const Typed = TYPED[type];
  const out = new Typed(flat.length) as TensorData;
  const big = type === 'int64' || type === 'uint64';
  for (let i = 0; i < flat.length; i++) {
    const v = flat[i];
    if (type === 'bool') {
      if (typeof v !== 'boolean') fail(`element ${i} must be true or false`);
      (out as Uint8Array)[i] = v ? 1 : 0;
    } else if (typeof v !== 'number' || !Number.isFinite(v)) {
      fail(`element ${i} must be a finite number`);
    } else if (type in FLOAT_MAX && Math.abs(v) > FLOAT_MAX[type as keyof typeof FLOAT_MAX]) {
      fail(`element ${i} is ${v}, beyond what ${type} holds`);
    } else if (big) {
      if (!Number.isInteger(v)) fail(`element ${i} must be an integer`);
      (out as BigInt64Array)[i] = BigInt(v);
    } else {
      if (!type.startsWith('float') && !Number.isInteger(v)) fail(`element ${i} must be an integer`);
      (out as Float64Array)[i] = v;
    }
  }
  return out;
}

function decodeBinary(type: TensorType, bytes: Uint8Array, count: number, fail: Fail): TensorData {
  if (type === 'string') {
    const out: string[] = [];
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    let pos = 0;
    const text = new TextDecoder();
    while (pos < bytes.length) {
      if (pos + 4 > bytes.length) fail('binary BYTES data is cut short');
      const len = view.getUint32(pos, true);
      pos += 4;
      if (pos + len > bytes.length) fail('binary BYTES data is cut short');
      out.push(text.decode(bytes.subarray(pos, pos + len)));
      pos += len;
    }
    if (out.length !== count) fail(`shape holds ${count} elements, binary data has ${out.length}`);
    return out;
  }
  const Typed = TYPED[type];
  const size = count * Typed.BYTES_PER_ELEMENT;
  if (bytes.length !== size) fail(`shape holds ${count} ${type} elements (${size} bytes), binary_data_size is ${bytes.length}`);
  // Copy: the body buffer may not be aligned for the element size.
  const copy = new Uint8Array(size);
  copy.set(bytes);
  return new Typed(copy.buffer, 0, count);
}

/** A tensor as JSON data (flat, row-major). */
export function jsonData(t: PlainTensor): unknown[] {
  if (Array.isArray(t.data)) return t.data;
  if (t.type === 'bool') return Array.from(t.data as Uint8Array, (v) => v !== 0);
  if (t.data instanceof BigInt64Array || t.data instanceof BigUint64Array) return Array.from(t.data, Number);
  return Array.from(t.data as ArrayLike<number>);
}

/** A tensor as raw little-endian bytes (Triton's binary data). */
export function binaryData(t: PlainTensor): Uint8Array {
  if (Array.isArray(t.data)) {
    const parts = t.data.map((s) => Buffer.from(s, 'utf8'));
    const out = Buffer.alloc(parts.reduce((n, p) => n + 4 + p.length, 0));
    let pos = 0;
    for (const p of parts) {
      out.writeUInt32LE(p.length, pos);
      p.copy(out, pos + 4);
      pos += 4 + p.length;
    }
    return out;
  }
  const d = t.data as Exclude<TensorData, string[]>;
  return new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
}
