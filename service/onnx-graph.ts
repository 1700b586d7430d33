// Reads the few facts the service needs from an ONNX file's protobuf (ModelProto), and rewrites
// one thing: skl2onnx's ZipMap output (a sequence of maps, which onnxruntime-node cannot return)
// is removed so the probability tensor that fed it becomes the graph output.
// Field numbers are from onnx/onnx.proto; only the wire format is needed, no generated code.

const WIRE_VARINT = 0;
const WIRE_I64 = 1;
const WIRE_LEN = 2;
const WIRE_I32 = 5;

interface Field {
  no: number;
  wire: number;
  /** varint value (wire 0), exact up to 2^53 */
  int: number;
  /** where the varint value starts within `raw`, to re-read it as 64 bits */
  at: number;
  /** payload (wire 2) */
  bytes: Uint8Array<ArrayBufferLike>;
  /** the whole field, tag included, as it stands in the parent */
  raw: Uint8Array;
}

export class OnnxFormatError extends Error {}

/** A varint as a number: exact up to 2^53, which tags, lengths and enums never pass. */
function readSmallVarint(buf: Uint8Array, pos: number): [number, number] {
  let result = 0;
  let scale = 1;
  for (;;) {
    if (pos >= buf.length) throw new OnnxFormatError('truncated varint');
    const b = buf[pos++]!;
    result += (b & 0x7f) * scale;
    if ((b & 0x80) === 0) return [result, pos];
    scale *= 128;
    if (scale > 2 ** 70) throw new OnnxFormatError('varint too long');
  }
}

/** A varint as a 64-bit value, for int64 attributes (negative ones take ten bytes). */
function readVarint(buf: Uint8Array, pos: number): [bigint, number] {
  let result = 0n;
  let shift = 0n;
  for (;;) {
    if (pos >= buf.length) throw new OnnxFormatError('truncated varint');
    const b = buf[pos++]!;
    result |= BigInt(b & 0x7f) << shift;
    if ((b & 0x80) === 0) return [result, pos];
    shift += 7n;
    if (shift > 70n) throw new OnnxFormatError('varint too long');
  }
}

/** The fields of a message; with `only`, just those numbers (the walk is cheap, objects are not). */
function fields(buf: Uint8Array, only?: ReadonlySet<number>): Field[] {
  const out: Field[] = [];
  let pos = 0;
  while (pos < buf.length) {
    const start = pos;
    const [tag, afterTag] = readSmallVarint(buf, pos);
    pos = afterTag;
    const no = Math.floor(tag / 8);
    const wire = tag % 8;
    const at = pos - start;
    let int = 0;
    let payload = -1;
    switch (wire) {
      case WIRE_VARINT:
        [int, pos] = readSmallVarint(buf, pos);
        break;
      case WIRE_I64:
        pos += 8;
        break;
      case WIRE_I32:
        pos += 4;
        break;
      case WIRE_LEN: {
        const [len, afterLen] = readSmallVarint(buf, pos);
        payload = afterLen;
        pos = afterLen + len;
        break;
      }
      default:
        throw new OnnxFormatError(`unsupported wire type ${wire}`);
    }
    if (no === 0 || pos > buf.length) throw new OnnxFormatError('malformed field');
    if (only && !only.has(no)) continue;
    out.push({ no, wire, int, at, bytes: payload < 0 ? EMPTY : buf.subarray(payload, pos), raw: buf.subarray(start, pos) });
  }
  return out;
}

const EMPTY: Uint8Array<ArrayBufferLike> = new Uint8Array(0);
const utf8 = new TextDecoder('utf-8', { fatal: false });
const str = (f: Field) => utf8.decode(f.bytes);
const child = (parent: Field[], no: number) => parent.filter((f) => f.no === no);

function varint(n: bigint): number[] {
  const out: number[] = [];
  let v = BigInt.asUintN(64, n);
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) b |= 0x80;
    out.push(b);
  } while (v > 0n);
  return out;
}
function lenField(no: number, payload: Uint8Array): Uint8Array {
  return Uint8Array.from([...varint(BigInt((no << 3) | WIRE_LEN)), ...varint(BigInt(payload.length)), ...payload]);
}
function intField(no: number, value: number): Uint8Array {
  return Uint8Array.from([...varint(BigInt((no << 3) | WIRE_VARINT)), ...varint(BigInt(value))]);
}
function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let pos = 0;
  for (const p of parts) {
    out.set(p, pos);
    pos += p.length;
  }
  return out;
}

// ModelProto.graph = 7; GraphProto: node 1, initializer 5, input 11, output 12;
// NodeProto: input 1, output 2, op_type 4, attribute 5, domain 7;
// AttributeProto: name 1, t 5, ints 8, strings 9; TensorProto: name 8, data_location 14.
const M_GRAPH = 7;
const G_NODE = 1;
const G_INITIALIZER = 5;
const G_OUTPUT = 12;
const N_INPUT = 1;
const N_OUTPUT = 2;
const N_OP_TYPE = 4;
const N_ATTRIBUTE = 5;
const A_NAME = 1;
const A_TENSOR = 5;
const A_INTS = 8;
const A_STRINGS = 9;
const T_NAME = 8;
const T_DATA_LOCATION = 14;
const T_EXTERNAL = 1;
const V_NAME = 1;

interface NodeInfo {
  opType: string;
  inputs: string[];
  outputs: string[];
  /** Attribute messages, unparsed: tree ensembles carry hundreds of thousands of values. */
  attributes: Field[];
}

const ATTRIBUTE_HEAD = new Set([A_NAME, A_TENSOR]);

function node(f: Field): NodeInfo {
  const fs = fields(f.bytes);
  return {
    opType: child(fs, N_OP_TYPE).map(str)[0] ?? '',
    inputs: child(fs, N_INPUT).map(str),
    outputs: child(fs, N_OUTPUT).map(str),
    attributes: child(fs, N_ATTRIBUTE),
  };
}

function attributeNamed(n: NodeInfo, name: string): Field[] | undefined {
  const found = n.attributes.find((a) => child(fields(a.bytes, ATTRIBUTE_HEAD), A_NAME).map(str)[0] === name);
  return found && fields(found.bytes);
}

function ints(attr: Field[]): number[] {
  const out: number[] = [];
  for (const f of child(attr, A_INTS)) {
    if (f.wire === WIRE_VARINT) out.push(Number(BigInt.asIntN(64, readVarint(f.raw, f.at)[0])));
    else {
      let pos = 0;
      while (pos < f.bytes.length) {
        const [v, next] = readVarint(f.bytes, pos);
        out.push(Number(BigInt.asIntN(64, v)));
        pos = next;
      }
    }
  }
  return out;
}

function isExternal(tensor: Field[]): boolean {
  return child(tensor, T_DATA_LOCATION).some((f) => f.int === T_EXTERNAL);
}

export interface GraphFacts {
  /** Names of tensors whose data lives in files outside the model. */
  externalTensors: string[];
  /** Class labels of a classifier, in the order of its probability columns. */
  classLabels: Array<number | string> | undefined;
  /** ZipMap nodes feeding a graph output: output name → the probability tensor it consumes. */
  zipMaps: Array<{ output: string; probabilities: string }>;
}

const NODE_HEAD = new Set([N_OP_TYPE, N_OUTPUT]);
const CLASSIFIER_OPS = new Set(['ZipMap', 'LinearClassifier', 'TreeEnsembleClassifier', 'SVMClassifier']);

export function inspectGraph(model: Uint8Array): GraphFacts {
  const top = fields(model);
  const graphField = child(top, M_GRAPH)[0];
  if (!graphField) throw new OnnxFormatError('no graph in the model');
  const graph = fields(graphField.bytes);
  const nodes = child(graph, G_NODE).map(node);
  const outputs = new Set(child(graph, G_OUTPUT).map((v) => child(fields(v.bytes), V_NAME).map(str)[0] ?? ''));

  const externalTensors = child(graph, G_INITIALIZER)
    .map((t) => fields(t.bytes))
    .filter(isExternal)
    .map((t) => child(t, T_NAME).map(str)[0] ?? '(unnamed)');
  for (const n of nodes) {
    for (const a of n.attributes) {
      for (const t of child(fields(a.bytes, ATTRIBUTE_HEAD), A_TENSOR)) {
        const tensor = fields(t.bytes);
        if (isExternal(tensor)) externalTensors.push(child(tensor, T_NAME).map(str)[0] ?? '(unnamed)');
      }
    }
  }

  let classLabels: Array<number | string> | undefined;
  for (const n of nodes.filter((x) => CLASSIFIER_OPS.has(x.opType))) {
    const s = attributeNamed(n, 'classlabels_strings');
    const i = attributeNamed(n, 'classlabels_int64s') ?? attributeNamed(n, 'classlabels_ints');
    if (s && child(s, A_STRINGS).length > 0) classLabels = child(s, A_STRINGS).map(str);
    else if (i && ints(i).length > 0) classLabels = ints(i);
    if (classLabels) break;
  }

  const zipMaps = nodes
    .filter((n) => n.opType === 'ZipMap' && n.outputs.some((o) => outputs.has(o)))
    .map((n) => ({ output: n.outputs[0]!, probabilities: n.inputs[0]! }));

  return { externalTensors, classLabels, zipMaps };
}

/**
 * Returns the model with its ZipMap nodes removed: each graph output a ZipMap produced is replaced
 * by the float tensor the ZipMap consumed (same name as that tensor). Other bytes are kept as they are.
 */
export function withoutZipMap(model: Uint8Array, facts: GraphFacts = inspectGraph(model)): Uint8Array {
  const { zipMaps, classLabels } = facts;
  if (zipMaps.length === 0) return model;
  const byOutput = new Map(zipMaps.map((z) => [z.output, z.probabilities]));
  const top = fields(model);
  const parts = top.map((f) => {
    if (f.no !== M_GRAPH) return f.raw;
    const graph = fields(f.bytes).flatMap((g) => {
      if (g.no === G_NODE) {
        const n = fields(g.bytes, NODE_HEAD);
        const isZipMap = child(n, N_OP_TYPE).map(str)[0] === 'ZipMap' && child(n, N_OUTPUT).map(str).some((o) => byOutput.has(o));
        return isZipMap ? [] : [g.raw];
      }
      if (g.no === G_OUTPUT) {
        const name = child(fields(g.bytes), V_NAME).map(str)[0] ?? '';
        const replacement = byOutput.get(name);
        if (replacement !== undefined) return [lenField(G_OUTPUT, floatTensorValueInfo(replacement, classLabels?.length))];
      }
      return [g.raw];
    });
    return lenField(M_GRAPH, concat(graph));
  });
  return concat(parts);
}

// ValueInfoProto { name: 1, type: 2 → TypeProto { tensor_type: 1 → { elem_type: 1 = FLOAT,
// shape: 2 → { dim: 1 → { dim_param: 2 = "N" }, dim → { dim_value: 1 = classes } } } } }
function floatTensorValueInfo(name: string, classes: number | undefined): Uint8Array {
  const shape = classes
    ? lenField(2, concat([lenField(1, lenField(2, new TextEncoder().encode('N'))), lenField(1, intField(1, classes))]))
    : new Uint8Array(0);
  const tensorType = concat([intField(1, 1), shape]);
  const typeProto = lenField(1, tensorType);
  return concat([lenField(V_NAME, new TextEncoder().encode(name)), lenField(2, typeProto)]);
}
