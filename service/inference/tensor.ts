// The tensors that cross between the event loop and the inference workers: plain typed arrays,
// so they travel by structured clone (or transfer) without onnxruntime objects.
export type TensorType =
  | 'float32'
  | 'float64'
  | 'int8'
  | 'uint8'
  | 'int16'
  | 'uint16'
  | 'int32'
  | 'uint32'
  | 'int64'
  | 'uint64'
  | 'bool'
  | 'string'
  | 'float16';

export type TensorData =
  | Float32Array
  | Float64Array
  | Int8Array
  | Uint8Array
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | BigInt64Array
  | BigUint64Array
  | string[];

export interface PlainTensor {
  type: TensorType;
  dims: number[];
  data: TensorData;
}

export interface ValueSignature {
  name: string;
  /** false for non-tensor values (sequences, maps). */
  isTensor: boolean;
  type?: TensorType | string;
  /** Dimensions; a string or -1 is a dynamic dimension. */
  shape?: Array<number | string>;
}

export interface ModelSignature {
  inputs: ValueSignature[];
  outputs: ValueSignature[];
}
