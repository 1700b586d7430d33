import { BinaryReader, BinaryWriter, WireType } from '@bufbuild/protobuf/wire';

// Reads the few facts the service needs from an ONNX file's protobuf (ModelProto), which comes
// from untrusted uploads, and rewrites one thing: skl2onnx's ZipMap output (a sequence of maps,
// which onnxruntime-node cannot return) is removed so the probability tensor that fed it becomes
// the graph output. The wire format is read with @bufbuild/protobuf's BinaryReader (bounds-checked,
// enums and 32-bit fields read as protobuf reads them); field numbers are from onnx/onnx.proto.

export class OnnxFormatError extends Error {}

// ModelProto
const M_GRAPH = 7;
const M_TRAINING_INFO = 20;
const M_FUNCTIONS = 25;
// TrainingInfoProto
const TI_INITIALIZATION = 1;
const TI_ALGORITHM = 2;
// FunctionProto
const F_NODE = 7;
// GraphProto
const G_NODE = 1;
const G_INITIALIZER = 5;
const G_OUTPUT = 12;
const G_SPARSE_INITIALIZER = 15;
// NodeProto
const N_INPUT = 1;
const N_OUTPUT = 2;
const N_OP_TYPE = 4;
const N_ATTRIBUTE = 5;
// AttributeProto
const A_NAME = 1;
const A_TENSOR = 5;
const A_GRAPH = 6;
const A_INTS = 8;
const A_STRINGS = 9;
const A_TENSORS = 10;
const A_GRAPHS = 11;
const A_SPARSE_TENSOR = 22;
const A_SPARSE_TENSORS = 23;
// TensorProto
const T_NAME = 8;
const T_EXTERNAL_DATA = 13;
const T_DATA_LOCATION = 14;
const T_EXTERNAL = 1;
// SparseTensorProto
const S_VALUES = 1;
const S_INDICES = 2;
// ValueInfoProto, TypeProto, TypeProto.Tensor, TensorShapeProto, Dimension (to write one)
const V_NAME = 1;
const V_TYPE = 2;
const TP_TENSOR = 1;
const TT_ELEM_TYPE = 1;
const TT_SHAPE = 2;
const SHAPE_DIM = 1;
const DIM_VALUE = 1;
const DIM_PARAM = 2;
const FLOAT = 1;

/** Deeper nesting of subgraphs (If/Loop/Scan bodies inside each other) is refused. */
const MAX_GRAPH_DEPTH = 64;

interface Field {
  no: number;
  wire: WireType;
  /** The payload of a length-delimited field. */
  bytes: Uint8Array;
  /** The whole field, tag included, as it stands in its message. */
  raw: Uint8Array;
  /** Where the value starts in `raw` (to read a varint). */
  at: number;
}

const EMPTY: Uint8Array = new Uint8Array(0);

/** The fields of a message, in order; with `only`, just those numbers. */
function fields(buf: Uint8Array, only?: ReadonlySet<number>): Field[] {
  const reader = new BinaryReader(buf);
  const out: Field[] = [];
  while (reader.pos < reader.len) {
    const start = reader.pos;
    const [no, wire] = reader.tag();
    const at = reader.pos - start;
    let bytes = EMPTY;
    if (wire === WireType.LengthDelimited) bytes = reader.bytes();
    else reader.skip(wire, no);
    if (only && !only.has(no)) continue;
    out.push({ no, wire, bytes, raw: buf.subarray(start, reader.pos), at });
  }
  return out;
}

const child = (parent: Field[], no: number) => parent.filter((f) => f.no === no);
const utf8 = new TextDecoder('utf-8', { fatal: false });
const str = (f: Field) => utf8.decode(f.bytes);
const firstString = (parent: Field[], no: number) => child(parent, no).map(str)[0];
/** A varint field read as protobuf reads an int32 or an enum: the low 32 bits. */
const int32 = (f: Field) => new BinaryReader(f.raw.subarray(f.at)).int32();

/** Repeated int64 values, packed or not. */
function int64s(parent: Field[], no: number): number[] {
  const out: number[] = [];
  for (const f of child(parent, no)) {
    const reader = new BinaryReader(f.wire === WireType.Varint ? f.raw.subarray(f.at) : f.bytes);
    do out.push(Number(reader.int64()));
    while (f.wire !== WireType.Varint && reader.pos < reader.len);
  }
  return out;
}

export interface GraphFacts {
  /** Names of tensors whose data lives in files outside the model, in any graph of it. */
  externalTensors: string[];
  /** Class labels of a classifier, in the order of its probability columns. */
  classLabels: Array<number | string> | undefined;
  /** ZipMap nodes feeding a graph output: output name → the probability tensor it consumes. */
  zipMaps: Array<{ output: string; probabilities: string }>;
}

interface NodeInfo {
  opType: string;
  inputs: string[];
  outputs: string[];
  /** Attribute messages, unparsed: tree ensembles carry hundreds of thousands of values. */
  attributes: Field[];
}

const NODE_FIELDS = new Set([N_INPUT, N_OUTPUT, N_OP_TYPE, N_ATTRIBUTE]);
const ATTRIBUTE_HEAD = new Set([A_NAME]);

function node(f: Field): NodeInfo {
  const fs = fields(f.bytes, NODE_FIELDS);
  return {
    opType: firstString(fs, N_OP_TYPE) ?? '',
    inputs: child(fs, N_INPUT).map(str),
    outputs: child(fs, N_OUTPUT).map(str),
    attributes: child(fs, N_ATTRIBUTE),
  };
}

function attributeNamed(n: NodeInfo, name: string): Field[] | undefined {
  const found = n.attributes.find((a) => firstString(fields(a.bytes, ATTRIBUTE_HEAD), A_NAME) === name);
  return found && fields(found.bytes);
}

// Every place a tensor can sit, in every graph: initializers and sparse initializers, tensor and
// sparse-tensor attributes (single and repeated) of every node, the bodies of If/Loop/Scan
// (graph attributes), model-local functions and training graphs. A tensor is external when its
// data_location reads EXTERNAL or it carries external_data entries at all.

function checkTensor(bytes: Uint8Array, external: string[]): void {
  const fs = fields(bytes, new Set([T_NAME, T_EXTERNAL_DATA, T_DATA_LOCATION]));
  const located = child(fs, T_DATA_LOCATION).some((f) => f.wire === WireType.Varint && int32(f) === T_EXTERNAL);
  if (located || child(fs, T_EXTERNAL_DATA).length > 0) external.push(firstString(fs, T_NAME) || '(unnamed)');
}

function checkSparseTensor(bytes: Uint8Array, external: string[]): void {
  for (const f of fields(bytes, new Set([S_VALUES, S_INDICES]))) checkTensor(f.bytes, external);
}

function walkNodes(nodes: Field[], depth: number, external: string[]): void {
  for (const n of nodes) {
    for (const a of child(fields(n.bytes, new Set([N_ATTRIBUTE])), N_ATTRIBUTE)) {
      for (const f of fields(a.bytes, new Set([A_TENSOR, A_TENSORS, A_GRAPH, A_GRAPHS, A_SPARSE_TENSOR, A_SPARSE_TENSORS]))) {
        if (f.no === A_TENSOR || f.no === A_TENSORS) checkTensor(f.bytes, external);
        else if (f.no === A_SPARSE_TENSOR || f.no === A_SPARSE_TENSORS) checkSparseTensor(f.bytes, external);
        else walkGraph(f.bytes, depth + 1, external);
      }
    }
  }
}

function walkGraph(bytes: Uint8Array, depth: number, external: string[]): void {
  if (depth > MAX_GRAPH_DEPTH) throw new OnnxFormatError(`subgraphs are nested more than ${MAX_GRAPH_DEPTH} deep`);
  const fs = fields(bytes, new Set([G_NODE, G_INITIALIZER, G_SPARSE_INITIALIZER]));
  for (const f of child(fs, G_INITIALIZER)) checkTensor(f.bytes, external);
  for (const f of child(fs, G_SPARSE_INITIALIZER)) checkSparseTensor(f.bytes, external);
  walkNodes(child(fs, G_NODE), depth, external);
}

const CLASSIFIER_OPS = new Set(['ZipMap', 'LinearClassifier', 'TreeEnsembleClassifier', 'SVMClassifier']);

/** The facts of a model; throws OnnxFormatError when the bytes are not a well-formed ONNX model. */
export function inspectGraph(model: Uint8Array): GraphFacts {
  try {
    return inspect(model);
  } catch (err) {
    if (err instanceof OnnxFormatError) throw err;
    // The reader's own errors (premature EOF, invalid varint, illegal tag ...): not protobuf.
    throw new OnnxFormatError((err as Error).message);
  }
}

/**
 * The model's graph: protobuf merges every occurrence of a message field, so a graph split over
 * two fields is one graph (and a check that read only the first would miss half of it).
 */
function graphOf(top: Field[]): Uint8Array {
  const parts = child(top, M_GRAPH);
  if (parts.length === 0) throw new OnnxFormatError('no graph in the model');
  if (parts.length === 1) return parts[0]!.bytes;
  const merged = new BinaryWriter();
  for (const p of parts) merged.raw(p.bytes);
  return merged.finish();
}

function inspect(model: Uint8Array): GraphFacts {
  const top = fields(model);
  const graphBytes = graphOf(top);

  const externalTensors: string[] = [];
  walkGraph(graphBytes, 0, externalTensors);
  for (const fn of child(top, M_FUNCTIONS)) walkNodes(child(fields(fn.bytes, new Set([F_NODE])), F_NODE), 1, externalTensors);
  for (const ti of child(top, M_TRAINING_INFO)) {
    for (const g of fields(ti.bytes, new Set([TI_INITIALIZATION, TI_ALGORITHM]))) walkGraph(g.bytes, 1, externalTensors);
  }

  const graph = fields(graphBytes, new Set([G_NODE, G_OUTPUT]));
  const nodes = child(graph, G_NODE).map(node);
  const outputs = new Set(child(graph, G_OUTPUT).map((v) => firstString(fields(v.bytes, new Set([V_NAME])), V_NAME) ?? ''));

  let classLabels: Array<number | string> | undefined;
  for (const n of nodes.filter((x) => CLASSIFIER_OPS.has(x.opType))) {
    const s = attributeNamed(n, 'classlabels_strings');
    const i = attributeNamed(n, 'classlabels_int64s') ?? attributeNamed(n, 'classlabels_ints');
    if (s && child(s, A_STRINGS).length > 0) classLabels = child(s, A_STRINGS).map(str);
    else if (i && int64s(i, A_INTS).length > 0) classLabels = int64s(i, A_INTS);
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
  const out = new BinaryWriter();
  const top = fields(model);
  let written = false;
  for (const f of top) {
    if (f.no !== M_GRAPH) {
      out.raw(f.raw);
      continue;
    }
    if (written) continue; // merged into the first one
    written = true;
    const graph = new BinaryWriter();
    for (const g of fields(graphOf(top))) {
      if (g.no === G_NODE) {
        const n = node(g);
        if (n.opType === 'ZipMap' && n.outputs.some((o) => byOutput.has(o))) continue;
      }
      const replacement = g.no === G_OUTPUT ? byOutput.get(firstString(fields(g.bytes, new Set([V_NAME])), V_NAME) ?? '') : undefined;
      if (replacement !== undefined) graph.tag(G_OUTPUT, WireType.LengthDelimited).bytes(floatTensorValueInfo(replacement, classLabels?.length));
      else graph.raw(g.raw);
    }
    out.tag(M_GRAPH, WireType.LengthDelimited).bytes(graph.finish());
  }
  return out.finish();
}

/** ValueInfoProto of a float tensor [N, classes] (or of unknown shape). */
function floatTensorValueInfo(name: string, classes: number | undefined): Uint8Array {
  const tensor = new BinaryWriter().tag(TT_ELEM_TYPE, WireType.Varint).int32(FLOAT);
  if (classes) {
    tensor.tag(TT_SHAPE, WireType.LengthDelimited).fork();
    tensor.tag(SHAPE_DIM, WireType.LengthDelimited).fork().tag(DIM_PARAM, WireType.LengthDelimited).string('N').join();
    tensor.tag(SHAPE_DIM, WireType.LengthDelimited).fork().tag(DIM_VALUE, WireType.Varint).int64(classes).join();
    tensor.join();
  }
  const type = new BinaryWriter().tag(TP_TENSOR, WireType.LengthDelimited).bytes(tensor.finish()).finish();
  return new BinaryWriter().tag(V_NAME, WireType.LengthDelimited).string(name).tag(V_TYPE, WireType.LengthDelimited).bytes(type).finish();
}
