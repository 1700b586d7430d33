#!/usr/bin/env python3
"""Writes hostile ONNX models and a manifest.json for the service's hardening tests.

Usage:
    generate_models.py [OUT_DIR] [--no-selfcheck] [--jobs N]

OUT_DIR defaults to <repo>/.cache/hostile-models. The folder is written whole into a staging
folder beside it and renamed into place, so a half-written set is never seen. Model bytes are
deterministic (no timestamps, seeded randomness); manifest.json is too, apart from what the
installed onnxruntime says (pinned in requirements.txt). Load/run timings go to
selfcheck-timings.json, which is not reproducible by nature.

Every model is self-checked in a child process (a crash or a hang there cannot take the generator
down): python onnx parse + onnx.checker (full_check), then onnxruntime in three ways:
  bytes_opt_all       InferenceSession(bytes), graph optimizations ALL: what the service does today
  bytes_opt_disabled  InferenceSession(bytes), optimizations disabled
  path_opt_all        InferenceSession(<sandbox>/work/model.onnx), optimizations ALL
The child runs with its working directory in a sandbox holding decoy files at the paths the
external-data models point at (package.json, models/metadata.json, ../etc/passwd); each decoy
holds a distinct float, so the model's output shows which file onnxruntime read. When strace
works, the child also runs under strace and the manifest lists the files each way opened.

`--selfcheck SPEC.json` is the child's entry point (internal).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = ROOT / ".cache" / "hostile-models"

OPSET = 17
ML_OPSET = 3
IR_VERSION = 9
PRODUCER = "analytics-api-hostile-models"

# Decoys laid out in the self-check sandbox (relative to its working dir "work/"), each holding
# one float (repeated 4 times), so that a model whose constant was read from that file answers
# a recognisable number. "/etc/passwd" is the real file; its first 4 bytes are read as a float.
DECOYS = {"package.json": 1111.0, "models/metadata.json": 2222.0, "../etc/passwd": 3333.0}
# Where the external-data models point. The service runs with its checkout as working dir, where
# package.json exists; models/metadata.json and ../etc/passwd are typical relative targets;
# /etc/passwd is absolute; ".." is a directory.
LOCATIONS = ["package.json", "models/metadata.json", "../etc/passwd", "/etc/passwd", ".."]
INLINE_VALUE = 0.25  # the constant's value when it is stored inline (controls)

MODES = ("bytes_opt_all", "bytes_opt_disabled", "path_opt_all")


# --------------------------------------------------------------------------------------------
# protobuf wire format by hand (for the bytes onnx.helper cannot or will not write)

def varint(n: int) -> bytes:
    """Unsigned LEB128 of n taken as uint64 (a negative n is written as its two's complement)."""
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def key(no: int, wire: int) -> bytes:
    return varint((no << 3) | wire)


def len_field(no: int, payload: bytes) -> bytes:
    return key(no, 2) + varint(len(payload)) + payload


def int_field(no: int, value: int) -> bytes:
    return key(no, 0) + varint(value)


def raw_int_field(no: int, encoded_varint: bytes) -> bytes:
    return key(no, 0) + encoded_varint


def top_fields(buf: bytes) -> list[tuple[int, int, int, int]]:
    """(field number, wire type, start, end) of each top-level field of a message."""
    out = []
    pos = 0
    while pos < len(buf):
        start = pos
        tag, pos = _read_varint(buf, pos)
        no, wire = tag >> 3, tag & 7
        if wire == 0:
            _, pos = _read_varint(buf, pos)
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        elif wire == 2:
            n, pos = _read_varint(buf, pos)
            pos += n
        else:
            raise ValueError(f"wire type {wire}")
        out.append((no, wire, start, pos))
    return out


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


# --------------------------------------------------------------------------------------------
# Building blocks (onnx imported lazily so that --help works without the venv)

def _onnx():
    import onnx
    from onnx import TensorProto, helper

    return onnx, helper, TensorProto


def vi(name: str, elem: int, shape):
    _, h, _ = _onnx()
    return h.make_tensor_value_info(name, elem, shape)


def make_model(graph, *, opsets: dict[str, int] | None = None, functions=(), ir_version: int = IR_VERSION):
    _, h, _ = _onnx()
    ops = {"": OPSET, **(opsets or {})}
    m = h.make_model(
        graph,
        opset_imports=[h.make_opsetid(d, v) for d, v in ops.items()],
        ir_version=ir_version,
        producer_name=PRODUCER,
        producer_version="1",
        functions=list(functions),
    )
    return m


def float_const(name: str, location: str | None, dims=(1,), value: float = INLINE_VALUE):
    """A float tensor: inline `value`, or 4 bytes of external data at `location`."""
    _, h, T = _onnx()
    count = math.prod(dims)
    if location is None:
        return h.make_tensor(name, T.FLOAT, list(dims), [value] * count)
    t = T()
    t.name = name
    t.data_type = T.FLOAT
    t.dims.extend(dims)
    t.data_location = T.EXTERNAL
    for k, v in (("location", location), ("offset", "0"), ("length", str(4 * count))):
        e = t.external_data.add()
        e.key = k
        e.value = v
    return t


def reduce_sum(inp: str, out: str, axes_name: str = "axes1"):
    _, h, _ = _onnx()
    return h.make_node("ReduceSum", [inp, axes_name], [out], keepdims=1)


def axes1():
    _, h, T = _onnx()
    return h.make_tensor("axes1", T.INT64, [1], [1])


def regressor_io(width=4):
    _, _, T = _onnx()
    return [vi("input", T.FLOAT, ["N", width])], [vi("variable", T.FLOAT, ["N", 1])]


# --------------------------------------------------------------------------------------------
# What each model is and what the service must answer

@dataclass
class Upload:
    """One way to upload the model: POST /api/v1/models?name=&version=[&features=JSON array]."""

    features: list[str] | None
    status: list[int]
    code: list[str]  # when the status is 4xx/5xx: the allowed problem codes ([] = any)
    note: str = ""

    def to_json(self) -> dict:
        q: dict[str, Any] = {"version": "1"}
        if self.features is not None:
            q["features"] = self.features
        return {"query": q, "expect_status": self.status, "expect_code": self.code, **({"note": self.note} if self.note else {})}


@dataclass
class Predict:
    """One prediction after an accepted upload. `fill` = every feature of the model has this value;
    `instances` = a batch request with each instance filled with one value."""

    status: list[int]
    code: list[str] = field(default_factory=list)
    fill: float | None = None
    instances: list[float] | None = None
    prediction: float | list[float] | None = None
    tolerance: float = 1e-4
    note: str = ""

    def to_json(self) -> dict:
        d: dict[str, Any] = {"expect_status": self.status}
        if self.code:
            d["expect_code"] = self.code
        if self.instances is not None:
            d["endpoint"] = "batch"
            d["instances_fill"] = self.instances
        else:
            d["endpoint"] = "single"
            d["fill"] = self.fill
        if self.prediction is not None:
            d["expect_prediction"] = self.prediction
            d["tolerance"] = self.tolerance
        if self.note:
            d["note"] = self.note
        return d


@dataclass
class Entry:
    stem: str
    category: str
    attack: str
    expected: str  # one line for people
    data: bytes
    uploads: list[Upload]
    predicts: list[Predict] = field(default_factory=list)
    # self-check: what to feed (value of every input element, batch of 2), and which output value
    # means which file was read (label → expected first element of the first output).
    feed: float | None = 1.0
    candidates: dict[str, float] = field(default_factory=dict)
    skip_run: str = ""
    timeout: int = 180
    notes: list[str] = field(default_factory=list)
    # what the model may do to a service without the defences (check_manifest.py skips these
    # unless --include-risky)
    risk: str = ""

    @property
    def file(self) -> str:
        return f"{self.stem}.onnx"


REJECT = [Upload(None, [400], ["INVALID_MODEL"])]


def etc_passwd_value() -> float | None:
    try:
        with open("/etc/passwd", "rb") as f:
            b = f.read(4)
        return struct.unpack("<f", b)[0] if len(b) == 4 else None
    except OSError:
        return None


def read_candidates(f: Callable[[float], float], location: str | None) -> dict[str, float]:
    """Which first-output value means what, for a model whose constant c enters as f(c)."""
    cands = {"inline value (no file read)": f(INLINE_VALUE)}
    if location is None:
        return cands
    cands["constant left empty / zero"] = f(0.0)
    for path, v in DECOYS.items():
        cands[f"read decoy {path}"] = f(v)
    pw = etc_passwd_value()
    if pw is not None and math.isfinite(pw):
        cands["read the real /etc/passwd"] = f(pw)
    return cands


# ---- external data in every place a TensorProto can hide -----------------------------------

def vector_initializer(loc):
    _, h, _ = _onnx()
    i, o = regressor_io()
    g = h.make_graph([reduce_sum("input", "s"), h.make_node("Add", ["s", "W"], ["variable"])], "ext_initializer", i, o,
                     [axes1(), float_const("W", loc)])
    return make_model(g), (lambda c: 4 + c)


def vector_constant(loc):
    _, h, _ = _onnx()
    i, o = regressor_io()
    g = h.make_graph([reduce_sum("input", "s"), h.make_node("Constant", [], ["W"], value=float_const("W", loc)),
                      h.make_node("Add", ["s", "W"], ["variable"])], "ext_constant", i, o, [axes1()])
    return make_model(g), (lambda c: 4 + c)


def _if_model(loc, in_then: bool):
    _, h, T = _onnx()
    i, o = regressor_io()
    hostile = h.make_graph([h.make_node("Constant", [], ["c_hidden"], value=float_const("W", loc))], "branch_hostile", [],
                           [vi("c_hidden", T.FLOAT, [1])])
    benign = h.make_graph([h.make_node("Constant", [], ["c_plain"], value=float_const("W0", None, value=0.0))],
                          "branch_plain", [], [vi("c_plain", T.FLOAT, [1])])
    then_b, else_b = (hostile, benign) if in_then else (benign, hostile)
    g = h.make_graph([reduce_sum("input", "s"), h.make_node("If", ["cond"], ["c"], then_branch=then_b, else_branch=else_b),
                      h.make_node("Add", ["s", "c"], ["variable"])], "ext_if", i, o,
                     [axes1(), h.make_tensor("cond", T.BOOL, [], [True])])
    taken = (lambda c: 4 + c) if in_then else (lambda c: 4.0)
    return make_model(g), taken


def vector_if_then(loc):
    return _if_model(loc, True)


def vector_if_else(loc):
    return _if_model(loc, False)


def vector_loop(loc):
    _, h, T = _onnx()
    i, o = regressor_io()
    body = h.make_graph(
        [h.make_node("Identity", ["cond_in"], ["cond_out"]),
         h.make_node("Constant", [], ["c"], value=float_const("W", loc)),
         h.make_node("Add", ["v_in", "c"], ["v_out"])],
        "loop_body",
        [vi("iter", T.INT64, []), vi("cond_in", T.BOOL, []), vi("v_in", T.FLOAT, ["N", 1])],
        [vi("cond_out", T.BOOL, []), vi("v_out", T.FLOAT, ["N", 1])])
    g = h.make_graph([reduce_sum("input", "s"), h.make_node("Loop", ["trip", "cond", "s"], ["variable"], body=body)],
                     "ext_loop", i, o,
                     [axes1(), h.make_tensor("trip", T.INT64, [], [1]), h.make_tensor("cond", T.BOOL, [], [True])])
    return make_model(g), (lambda c: 4 + c)


def vector_scan(loc):
    _, h, T = _onnx()
    i, o = regressor_io()
    body = h.make_graph(
        [h.make_node("Constant", [], ["axes0"], value=h.make_tensor("axes0", T.INT64, [1], [0])),
         h.make_node("ReduceSum", ["row", "axes0"], ["r"], keepdims=1),
         h.make_node("Constant", [], ["c"], value=float_const("W", loc)),
         h.make_node("Add", ["r", "c"], ["y"])],
        "scan_body", [vi("row", T.FLOAT, [4])], [vi("y", T.FLOAT, [1])])
    g = h.make_graph([h.make_node("Scan", ["input"], ["variable"], body=body, num_scan_inputs=1)], "ext_scan", i, o)
    return make_model(g), (lambda c: 4 + c)


def vector_function(loc):
    _, h, _ = _onnx()
    i, o = regressor_io()
    fn = h.make_function(
        "hostile.local", "AddHidden", ["x"], ["y"],
        [h.make_node("Constant", [], ["c"], value=float_const("W", loc)), h.make_node("Add", ["x", "c"], ["y"])],
        opset_imports=[h.make_opsetid("", OPSET)])
    g = h.make_graph([reduce_sum("input", "s"), h.make_node("AddHidden", ["s"], ["variable"], domain="hostile.local")],
                     "ext_function", i, o, [axes1()])
    return make_model(g, opsets={"hostile.local": 1}, functions=[fn]), (lambda c: 4 + c)


def _sparse(loc):
    _, h, T = _onnx()
    values = float_const("W", loc)
    indices = h.make_tensor("W_indices", T.INT64, [1], [0])
    return h.make_sparse_tensor(values, indices, [4, 1])


def vector_sparse_initializer(loc):
    _, h, _ = _onnx()
    i, o = regressor_io()
    g = h.make_graph([h.make_node("MatMul", ["input", "W"], ["variable"])], "ext_sparse_initializer", i, o,
                     sparse_initializer=[_sparse(loc)])
    return make_model(g), (lambda c: c)


def vector_constant_sparse_value(loc):
    _, h, _ = _onnx()
    i, o = regressor_io()
    g = h.make_graph([h.make_node("Constant", [], ["W"], sparse_value=_sparse(loc)),
                      h.make_node("MatMul", ["input", "W"], ["variable"])], "ext_constant_sparse_value", i, o)
    return make_model(g), (lambda c: c)


def vector_tensors_attribute(loc):
    _, h, _ = _onnx()
    i, o = regressor_io()
    g = h.make_graph([reduce_sum("input", "s"),
                      h.make_node("Identity", ["s"], ["variable"], tensors=[float_const("W", loc), float_const("W2", None)])],
                     "ext_tensors_attribute", i, o, [axes1()])
    return make_model(g), (lambda c: 4.0)


def vector_training_info(loc):
    _, h, T = _onnx()
    onnx, _, _ = _onnx()
    i, o = regressor_io()
    g = h.make_graph([reduce_sum("input", "s"), h.make_node("Identity", ["s"], ["variable"])], "main", i, o, [axes1()])
    m = make_model(g)
    init = h.make_graph([h.make_node("Identity", ["W"], ["W_out"])], "training_init", [], [vi("W_out", T.FLOAT, [1])],
                        [float_const("W", loc)])
    ti = onnx.TrainingInfoProto()
    ti.initialization.CopyFrom(init)
    m.training_info.append(ti)
    return m, (lambda c: 4.0)


VECTORS: dict[str, tuple[Callable, str, bool]] = {
    # name: (builder, what it is, baseline = rejected by today's service too)
    "initializer": (vector_initializer, "the main graph's initializer (baseline: already refused today)", True),
    "constant": (vector_constant, "a Constant node's value attribute in the main graph (refused today)", True),
    "if-then": (vector_if_then, "a Constant's tensor inside an If node's then_branch (the branch taken)", False),
    "if-else": (vector_if_else, "a Constant's tensor inside an If node's else_branch (the branch not taken)", False),
    "loop-body": (vector_loop, "a Constant's tensor inside a Loop body", False),
    "scan-body": (vector_scan, "a Constant's tensor inside a Scan body", False),
    "function": (vector_function, "a Constant's tensor inside a model-local function (ModelProto.functions)", False),
    "sparse-initializer": (vector_sparse_initializer, "graph.sparse_initializer whose values tensor has external data", False),
    "constant-sparse-value": (vector_constant_sparse_value, "a Constant node's sparse_value attribute with external values", False),
    "tensors-attribute": (vector_tensors_attribute, "a TENSORS (repeated) attribute of a node", False),
    "training-info": (vector_training_info, "ModelProto.training_info[].initialization graph's initializer", False),
}


def loc_slug(loc: str) -> str:
    return {"package.json": "package-json", "models/metadata.json": "models-metadata-json", "../etc/passwd": "dotdot-etc-passwd",
            "/etc/passwd": "abs-etc-passwd", "..": "dotdot"}[loc]


def external_entries() -> list[Entry]:
    out = []
    for name, (build, what, baseline) in VECTORS.items():
        if name not in ("tensors-attribute", "training-info"):
            m, f = build(None)
            out.append(Entry(
                f"control-{name}-inline", "control",
                f"the same graph as ext-{name}-*, with the constant stored inline: {what} holding {INLINE_VALUE}",
                "upload accepted (201); predict with every feature 1 → " + _fmt(f(INLINE_VALUE)),
                m.SerializeToString(), [Upload(None, [201], [])],
                [Predict([200], fill=1.0, prediction=f(INLINE_VALUE))],
                candidates=read_candidates(f, None)))
        for loc in LOCATIONS:
            m, f = build(loc)
            out.append(Entry(
                f"ext-{name}-{loc_slug(loc)}", "external-data",
                f"external data in {what}; location {json.dumps(loc)}" + (" (baseline)" if baseline else ""),
                "upload → 400 INVALID_MODEL, refused by the model walker before onnxruntime sees the bytes (no file opened)",
                m.SerializeToString(), REJECT, candidates=read_candidates(f, loc)))
    return out


def patched_data_location(encoded: bytes, label: str, where: str) -> Entry:
    """data_location = EXTERNAL written as a varint that a 32-bit enum reads as 1 but a
    full-width reader does not: the tensor bytes are patched, then re-wrapped by hand."""
    _, h, T = _onnx()
    t = float_const("W", "package.json")
    tb = t.SerializeToString()
    canonical = int_field(14, 1)
    assert tb.count(canonical) == 1, "data_location field not found exactly once"
    tb = tb.replace(canonical, raw_int_field(14, encoded))
    i, o = regressor_io()
    if where == "initializer":
        g = h.make_graph([reduce_sum("input", "s"), h.make_node("Add", ["s", "W"], ["variable"])], "ext_varint", i, o, [axes1()])
        graph_bytes = g.SerializeToString() + len_field(5, tb)  # GraphProto.initializer = 5
    else:
        # NodeProto Constant { output "W", op_type "Constant", attribute { name "value", type TENSOR(4), t = 5 } }
        attr = len_field(1, b"value") + int_field(20, 4) + len_field(5, tb)
        const = len_field(2, b"W") + len_field(4, b"Constant") + len_field(5, attr)
        g = h.make_graph([reduce_sum("input", "s"), h.make_node("Add", ["s", "W"], ["variable"])], "ext_varint", i, o, [axes1()])
        gb = g.SerializeToString()
        # put the Constant node first (nodes are in topological order; it feeds Add)
        graph_bytes = len_field(1, const) + gb
    m = make_model(h.make_graph([], "placeholder", [], []))
    m.ClearField("graph")
    data = m.SerializeToString() + len_field(7, graph_bytes)
    f = lambda c: 4 + c  # noqa: E731
    return Entry(
        f"extvarint-{where}-{label}-package-json", "external-data",
        f"data_location of a {'main-graph initializer' if where == 'initializer' else 'main-graph Constant tensor'} written as the "
        f"varint {encoded.hex()} ({label}); protobuf keeps the low 32 bits of an enum (1 = EXTERNAL), a 53/64-bit reader sees "
        "another number; location \"package.json\"",
        "upload → 400 INVALID_MODEL (the enum must be read as protobuf does: low 32 bits, or any non-DEFAULT value refused)",
        data, REJECT, candidates=read_candidates(f, "package.json"))


def split_graph_field() -> Entry:
    """ModelProto.graph given twice: protobuf merges repeated occurrences of a singular message, so
    the initializer in the second occurrence belongs to the one graph. A reader that takes only the
    first occurrence sees no external data."""
    _, h, _ = _onnx()
    i, o = regressor_io()
    first = h.make_graph([reduce_sum("input", "s"), h.make_node("Add", ["s", "W"], ["variable"])], "split", i, o, [axes1()])
    second = len_field(5, float_const("W", "package.json").SerializeToString())
    m = make_model(h.make_graph([], "placeholder", [], []))
    m.ClearField("graph")
    data = m.SerializeToString() + len_field(7, first.SerializeToString()) + len_field(7, second)
    f = lambda c: 4 + c  # noqa: E731
    return Entry(
        "ext-split-graph-field-package-json", "external-data",
        "ModelProto.graph appears twice; the second occurrence carries only the initializer W with external data at "
        "\"package.json\" (protobuf merges both into one graph; a reader of the first occurrence alone sees no external data)",
        "upload → 400 INVALID_MODEL (singular message fields must be merged like protobuf does, or repeated ones refused)",
        data, REJECT, candidates=read_candidates(f, "package.json"))


def split_tensor_attribute() -> Entry:
    """A Constant's attribute `t` given twice: the first holds dims/type/name, the second only
    data_location=EXTERNAL + external_data. Merged by protobuf into one external tensor."""
    _, h, T = _onnx()
    ext = float_const("W", "package.json")
    part1 = T()
    part1.name = "W"
    part1.data_type = T.FLOAT
    part1.dims.extend([1])
    part2 = T()
    part2.CopyFrom(ext)
    part2.ClearField("name")
    part2.ClearField("dims")
    part2.ClearField("data_type")
    attr = len_field(1, b"value") + int_field(20, 4) + len_field(5, part1.SerializeToString()) + len_field(5, part2.SerializeToString())
    const = len_field(2, b"W") + len_field(4, b"Constant") + len_field(5, attr)
    i, o = regressor_io()
    g = h.make_graph([reduce_sum("input", "s"), h.make_node("Add", ["s", "W"], ["variable"])], "split_t", i, o, [axes1()])
    graph_bytes = len_field(1, const) + g.SerializeToString()
    m = make_model(h.make_graph([], "placeholder", [], []))
    m.ClearField("graph")
    data = m.SerializeToString() + len_field(7, graph_bytes)
    f = lambda c: 4 + c  # noqa: E731
    return Entry(
        "ext-split-tensor-attribute-package-json", "external-data",
        "a Constant's attribute t given twice (merged by protobuf): the first part names and shapes the tensor, the second "
        "carries only data_location=EXTERNAL and location \"package.json\"",
        "upload → 400 INVALID_MODEL",
        data, REJECT, candidates=read_candidates(f, "package.json"))


# ---- widths ---------------------------------------------------------------------------------

def wide_reduce_sum(width: int, stem: str, note: str) -> Entry:
    _, h, _ = _onnx()
    i, o = regressor_io(width)
    m = make_model(h.make_graph([reduce_sum("input", "variable")], "wide", i, o, [axes1()]))
    return Entry(
        stem, "width",
        f"input [N, {width}] in {len(m.SerializeToString())} bytes (ReduceSum over the features): {note}",
        "upload → 400 FEATURES_INVALID or INVALID_MODEL before any per-feature work (no feature names built, "
        "answered in well under a second, memory flat); with features=[a,b,c,d] → 400 FEATURES_INVALID",
        m.SerializeToString(),
        [Upload(None, [400], ["FEATURES_INVALID", "INVALID_MODEL"], "no features: today the service builds one name per column"),
         Upload(["a", "b", "c", "d"], [400], ["FEATURES_INVALID", "INVALID_MODEL"])],
        skip_run=f"not run: one row is {width * 4} bytes", feed=None,
        risk="" if width >= 2**32 else "uploaded without features, a service that names every column (f0, f1, ...) builds "
        f"{width:,} strings: gigabytes of heap, minutes of event loop, likely an out-of-memory crash")


def wide_identity(width: int) -> Entry:
    """The smallest wide model: Identity, no initializer, no producer fields."""
    onnx, h, T = _onnx()
    g = h.make_graph([h.make_node("Identity", ["x"], ["y"])], "w", [vi("x", T.FLOAT, ["N", width])], [vi("y", T.FLOAT, ["N", width])])
    m = onnx.ModelProto(ir_version=IR_VERSION, graph=g)
    m.opset_import.append(h.make_opsetid("", OPSET))
    data = m.SerializeToString()
    return Entry(
        "wide-300m-identity", "width",
        f"input and output [N, {width}] in {len(data)} bytes (Identity): a regressor-shaped model whose single row is 1.2 GB",
        "upload → 400 FEATURES_INVALID or INVALID_MODEL before any per-feature work; with features=[a,b,c,d] → 400 "
        "FEATURES_INVALID",
        data,
        [Upload(None, [400], ["FEATURES_INVALID", "INVALID_MODEL"]), Upload(["a", "b", "c", "d"], [400], ["FEATURES_INVALID", "INVALID_MODEL"])],
        skip_run=f"not run: one row is {width * 4} bytes", feed=None,
        risk="" if width >= 2**32 else "uploaded without features, a service that names every column (f0, f1, ...) builds "
        f"{width:,} strings: gigabytes of heap, minutes of event loop, likely an out-of-memory crash")


def wide_matmul(width: int, accepted: list[int], expected: str) -> Entry:
    import numpy as np

    _, h, T = _onnx()
    i, o = regressor_io(width)
    w = np.full((width, 1), 1.0 / width, dtype=np.float32)
    m = make_model(h.make_graph([h.make_node("MatMul", ["input", "W"], ["variable"])], "wide_matmul", i, o,
                                [h.make_tensor("W", T.FLOAT, [width, 1], w.tobytes(), raw=True)]))
    preds = [Predict([200], fill=1.0, prediction=1.0, tolerance=1e-3, note="the mean of the features"),
             Predict([200], instances=[1.0, 2.0], prediction=[1.0, 2.0], tolerance=1e-3)]
    return Entry(
        f"wide-{width // 1000}k-matmul", "width",
        f"a legitimately wide regressor: input [N, {width}], MatMul with weights 1/{width} (the mean of the features)",
        expected, m.SerializeToString(),
        [Upload(None, accepted, ["FEATURES_INVALID", "INVALID_MODEL"], "no features: the service names them f0..f" + str(width - 1))],
        preds if 201 in accepted else [], timeout=300,
        risk="" if width <= 30_000 else f"a service whose feature checks are quadratic (indexOf/includes per name) spends "
        f"~{width * width / 2:.0e} string comparisons per upload and per prediction, blocking its event loop for a long time")


def per_feature_wide(width: int) -> Entry:
    _, h, T = _onnx()
    names = [f"f{k}" for k in range(width)]
    inputs = [vi(n, T.FLOAT, ["N", 1]) for n in names]
    g = h.make_graph([h.make_node("Concat", names, ["all"], axis=1), reduce_sum("all", "variable")], "per_feature_wide",
                     inputs, [vi("variable", T.FLOAT, ["N", 1])], [axes1()])
    return Entry(
        f"per-feature-{width // 1000}k", "width",
        f"{width} per-feature inputs [N, 1] (one input per feature, Concat + ReduceSum): the per-feature mode's "
        "name matching must be linear (Set/Map), not includes()/indexOf() per feature",
        "upload accepted (201) quickly, predict with every feature 1 → " + str(width) + " quickly; or 400 INVALID_MODEL/"
        "FEATURES_INVALID if the service caps the number of inputs",
        make_model(g).SerializeToString(),
        [Upload(None, [201, 400], ["FEATURES_INVALID", "INVALID_MODEL"])],
        [Predict([200], fill=1.0, prediction=float(width), tolerance=1e-2, note="only when the upload was accepted")],
        timeout=300)


# ---- run-time behaviour ---------------------------------------------------------------------

def runtime_fail() -> list[Entry]:
    _, h, T = _onnx()
    i, o = regressor_io()
    gather = make_model(h.make_graph([h.make_node("Gather", ["input", "idx"], ["variable"], axis=1)], "gather_oob", i, o,
                                     [h.make_tensor("idx", T.INT64, [1], [7])]))
    reshape = make_model(h.make_graph([h.make_node("Reshape", ["input", "shape14"], ["r"]), reduce_sum("r", "variable")],
                                      "reshape_batch1", i, o, [axes1(), h.make_tensor("shape14", T.INT64, [2], [1, 4])]))
    return [
        Entry("runtime-fail-gather-oob", "runtime",
              "loads fine, fails on every input at run time: Gather along the features with the constant index 7 of 4",
              "upload accepted (201; or 400 INVALID_MODEL if uploads are test-run) ; every predict → 500 INFERENCE_FAILED "
              "problem+json (not a crash, not a hang), /health still ok, other models unaffected",
              gather.SerializeToString(), [Upload(None, [201, 400], ["INVALID_MODEL"])],
              [Predict([500], ["INFERENCE_FAILED"], fill=1.0), Predict([500], ["INFERENCE_FAILED"], instances=[1.0, 2.0])]),
        Entry("runtime-fail-batch-gt1", "runtime",
              "runs for one row, fails for two or more: Reshape to the constant shape [1, 4], although its batch dimension is dynamic",
              "upload → 400 INVALID_MODEL: the service's trial run feeds several rows (a dynamic batch dimension promises them), "
              "and a model that cannot answer them would break batches and dynamic batching",
              reshape.SerializeToString(), [Upload(None, [400], ["INVALID_MODEL"])], []),
    ]


def non_finite() -> list[Entry]:
    _, h, T = _onnx()
    i, o = regressor_io()

    def const_model(nodes, inits, stem, what):
        g = h.make_graph([reduce_sum("input", "s"), h.make_node("Mul", ["s", "zero"], ["s0"]), *nodes,
                          h.make_node("Add", ["s0", "bad"], ["variable"])], stem.replace("-", "_"), i, o,
                         [axes1(), h.make_tensor("zero", T.FLOAT, [1], [0.0]), *inits])
        return make_model(g).SerializeToString()

    nan = const_model([h.make_node("Log", ["minus1"], ["bad"])], [h.make_tensor("minus1", T.FLOAT, [1], [-1.0])], "nan", "")
    pinf = const_model([h.make_node("Div", ["one", "zero"], ["bad"])], [h.make_tensor("one", T.FLOAT, [1], [1.0])], "pinf", "")
    ninf = const_model([h.make_node("Log", ["zero"], ["bad"])], [], "ninf", "")
    sqrt = make_model(h.make_graph([reduce_sum("input", "s"), h.make_node("Sqrt", ["s"], ["variable"])], "sqrt", i, o, [axes1()]))
    # a classifier whose probabilities are all NaN (label from LinearClassifier is still fine)
    clf_nodes = [h.make_node("LinearClassifier", ["input"], ["label", "scores"], domain="ai.onnx.ml",
                             coefficients=[0.1] * 12, intercepts=[0.0, 0.0, 1.0], classlabels_ints=[0, 1, 2],
                             post_transform="SOFTMAX"),
                 h.make_node("Mul", ["scores", "nan"], ["probabilities"])]
    clf = make_model(h.make_graph(clf_nodes, "nan_probs", [vi("input", T.FLOAT, ["N", 4])],
                                  [vi("label", T.INT64, ["N"]), vi("probabilities", T.FLOAT, ["N", 3])],
                                  [h.make_tensor("nan", T.FLOAT, [1], [float("nan")])]), opsets={"ai.onnx.ml": ML_OPSET})
    bad = "upload accepted (201); predict → an error problem+json naming the non-finite output (500 INFERENCE_FAILED or a " \
          "dedicated code), never 200 with prediction null/NaN/Infinity (JSON has no NaN; JSON.stringify writes null)"
    return [
        Entry("nonfinite-nan-regressor", "non-finite", "a regressor answering NaN for every row: sum*0 + Log(-1)", bad, nan,
              [Upload(None, [201, 400], ["INVALID_MODEL"])],
              [Predict([500, 422], fill=1.0), Predict([500, 422], instances=[1.0, 2.0])]),
        Entry("nonfinite-posinf-regressor", "non-finite", "a regressor answering +Inf for every row: sum*0 + 1/0", bad, pinf,
              [Upload(None, [201, 400], ["INVALID_MODEL"])], [Predict([500, 422], fill=1.0)]),
        Entry("nonfinite-neginf-regressor", "non-finite", "a regressor answering -Inf for every row: sum*0 + Log(0)", bad, ninf,
              [Upload(None, [201, 400], ["INVALID_MODEL"])], [Predict([500, 422], fill=1.0)]),
        Entry("nonfinite-nan-when-negative", "non-finite",
              "a regressor answering sqrt(sum of features): finite for a non-negative sum, NaN for a negative one",
              "upload accepted (201); predict with every feature 1 → 200 with 2; every feature -1 → error (500/422), never 200 "
              "with null; a batch [1, -1] → an error for the whole batch or per-row errors, never a null prediction",
              sqrt.SerializeToString(), [Upload(None, [201], [])],
              [Predict([200], fill=1.0, prediction=2.0), Predict([500, 422], fill=-1.0), Predict([500, 422], instances=[1.0, -1.0])],
              feed=-1.0),
        Entry("nonfinite-nan-probabilities", "non-finite",
              "a classifier (LinearClassifier, 3 classes) whose probability tensor is all NaN",
              "upload accepted (201); predict → error (500/422), never 200 with confidence/probabilities null",
              clf.SerializeToString(), [Upload(None, [201, 400], ["INVALID_MODEL"])], [Predict([500, 422], fill=1.0)]),
    ]


# ---- output shapes and kinds ------------------------------------------------------------------

def classifier_shapes() -> list[Entry]:
    import numpy as np

    _, h, T = _onnx()
    rng = np.random.default_rng(7)
    W = rng.normal(size=(4, 3)).astype(np.float32)

    def softmax_head():
        return [h.make_node("MatMul", ["input", "W"], ["logits"]), h.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
                h.make_node("ArgMax", ["probabilities"], ["argmax"], axis=1, keepdims=0)]

    inits = [h.make_tensor("W", T.FLOAT, [4, 3], W.tobytes(), raw=True)]
    scalar = make_model(h.make_graph(softmax_head() + [h.make_node("ReduceMax", ["argmax"], ["label"], keepdims=0)],
                                     "label_scalar", [vi("input", T.FLOAT, ["N", 4])],
                                     [vi("label", T.INT64, []), vi("probabilities", T.FLOAT, ["N", 3])], inits))
    fixed1 = make_model(h.make_graph(softmax_head() + [h.make_node("ReduceMax", ["argmax"], ["label"], axes=[0], keepdims=1)],
                                     "label_fixed1", [vi("input", T.FLOAT, ["N", 4])],
                                     [vi("label", T.INT64, [1]), vi("probabilities", T.FLOAT, ["N", 3])], inits))

    def linear(prob_nodes, prob_shape, stem):
        nodes = [h.make_node("LinearClassifier", ["input"], ["label", "scores"], domain="ai.onnx.ml",
                             coefficients=[0.1] * 12, intercepts=[0.0, 0.0, 1.0], classlabels_ints=[0, 1, 2],
                             post_transform="SOFTMAX"), *prob_nodes]
        g = h.make_graph(nodes, stem, [vi("input", T.FLOAT, ["N", 4])],
                         [vi("label", T.INT64, ["N"]), vi("probabilities", T.FLOAT, prob_shape)],
                         [h.make_tensor("s0", T.INT64, [1], [0]), h.make_tensor("s2", T.INT64, [1], [2]),
                          h.make_tensor("ax1", T.INT64, [1], [1]), h.make_tensor("pads", T.INT64, [4], [0, 0, 0, 1])])
        return make_model(g, opsets={"ai.onnx.ml": ML_OPSET}).SerializeToString()

    slice2 = [h.make_node("Slice", ["scores", "s0", "s2", "ax1"], ["probabilities"])]
    pad4 = [h.make_node("Pad", ["scores", "pads"], ["probabilities"])]
    no_batch = "upload → 400 INVALID_MODEL (a label output must have the batch dimension: [N] or [N, 1])"
    return [
        Entry("classifier-label-scalar", "output-shape",
              "a classifier whose label output is a scalar (shape []) while the input is [N, 4] and probabilities [N, 3]",
              no_batch, scalar.SerializeToString(), REJECT),
        Entry("classifier-label-fixed1", "output-shape",
              "a classifier whose label output is fixed [1] (ReduceMax over the batch) while the input is [N, 4]",
              no_batch, fixed1.SerializeToString(), REJECT),
        Entry("classifier-probs-2-of-3-static", "output-shape",
              "LinearClassifier with 3 class labels (0, 1, 2) whose probability output is sliced to [N, 2] (declared statically)",
              "upload → 400 INVALID_MODEL (probability width 2 ≠ 3 class labels)", linear(slice2, ["N", 2], "probs2s"), REJECT),
        Entry("classifier-probs-4-of-3-static", "output-shape",
              "LinearClassifier with 3 class labels whose probability output is padded to [N, 4] (declared statically)",
              "upload → 400 INVALID_MODEL (probability width 4 ≠ 3 class labels)", linear(pad4, ["N", 4], "probs4s"), REJECT),
        Entry("classifier-probs-2-of-3-dynamic", "output-shape",
              "LinearClassifier with 3 class labels, probability output [N, C] declared dynamic, 2 wide at run time; "
              "every input predicts class 2, which has no probability column",
              "upload accepted (201) or 400 INVALID_MODEL (if uploads are test-run); predict → 500 INFERENCE_FAILED (or another "
              "error), never 200 with confidence missing/null or probabilities of the wrong length",
              linear(slice2, ["N", "C"], "probs2d"), [Upload(None, [201, 400], ["INVALID_MODEL"])],
              [Predict([500, 422], fill=1.0)]),
    ]


def output_kinds() -> list[Entry]:
    _, h, T = _onnx()
    i, _ = regressor_io()
    shape_only = make_model(h.make_graph([h.make_node("Shape", ["input"], ["shape"])], "shape_only", i,
                                         [vi("shape", T.INT64, [2])]))
    string_only = make_model(h.make_graph([h.make_node("Cast", ["input"], ["text"], to=T.STRING)], "string_only", i,
                                          [vi("text", T.STRING, ["N", 4])]))
    none = make_model(h.make_graph([reduce_sum("input", "s")], "no_outputs", i, [], [axes1()]))
    return [
        Entry("output-int64-shape-only", "outputs",
              "float input [N, 4], the only output is Shape(input): int64 [2], not a per-row label",
              "upload → 400 INVALID_MODEL (no [N]/[N,1] label and no float value output)", shape_only.SerializeToString(), REJECT),
        Entry("output-string-only", "outputs",
              "float input [N, 4], the only output is Cast(input → string): string [N, 4], not a label",
              "upload → 400 INVALID_MODEL (no [N]/[N,1] label and no float value output)", string_only.SerializeToString(), REJECT),
        Entry("output-none", "outputs", "a graph with zero outputs (onnx.helper writes it; the checker's view is in the manifest)",
              "upload → 400 INVALID_MODEL", none.SerializeToString(), REJECT),
    ]


# ---- structure: nesting, size, malformation ----------------------------------------------------

def nested_if(depth: int) -> bytes:
    """If inside If `depth` deep, built by hand (onnx.helper re-parses attributes and stops at 100
    nested messages). Every branch forwards the outer-scope tensor s."""
    _, h, T = _onnx()

    def value_info(name):
        return vi(name, T.FLOAT, ["N", 1]).SerializeToString()

    def graph(node_bytes, name, out):
        return len_field(1, node_bytes) + len_field(2, name.encode()) + len_field(12, value_info(out))

    def identity(out):
        return len_field(1, b"s") + len_field(2, out.encode()) + len_field(4, b"Identity")

    def attr_graph(name, g):
        return len_field(1, name.encode()) + int_field(20, 5) + len_field(6, g)  # type GRAPH = 5, g = 6

    inner = graph(identity(f"o{depth}"), f"g{depth}", f"o{depth}")
    for k in range(depth - 1, -1, -1):
        out = "variable" if k == 0 else f"o{k}"
        else_g = graph(identity(f"e{k}"), f"e{k}", f"e{k}")
        node = (len_field(1, b"cond") + len_field(2, out.encode()) + len_field(4, b"If")
                + len_field(5, attr_graph("then_branch", inner)) + len_field(5, attr_graph("else_branch", else_g)))
        if k == 0:
            break
        inner = graph(node, f"g{k}", out)
    i, o = regressor_io()
    main = h.make_graph([reduce_sum("input", "s")], "nested_if", i, o, [axes1(), h.make_tensor("cond", T.BOOL, [], [True])])
    m = make_model(h.make_graph([], "placeholder", [], []))
    m.ClearField("graph")
    return m.SerializeToString() + len_field(7, main.SerializeToString() + len_field(1, node))


def structure() -> list[Entry]:
    _, h, T = _onnx()
    out = [
        Entry("control-nested-if-3", "control", "If inside If, 3 deep, every branch forwarding the sum of the features",
              "upload accepted (201); predict with every feature 1 → 4", nested_if(3), [Upload(None, [201], [])],
              [Predict([200], fill=1.0, prediction=4.0)]),
        Entry("nested-if-200", "structure",
              "If inside If, 200 deep (600 nested protobuf messages): recursion limits of a graph walker",
              "upload → 400 INVALID_MODEL quickly (nesting deeper than the walker's limit; protobuf's default limit is 100 "
              "messages), never a 500, a stack overflow or a hang", nested_if(200), REJECT),
        Entry("nested-if-5000", "structure",
              "If inside If, 5000 deep (15,000 nested messages): enough to overflow a naively recursive walker's stack",
              "upload → 400 INVALID_MODEL quickly, never a 500 (RangeError: Maximum call stack size exceeded), a crash or a hang",
              nested_if(5000), REJECT),
    ]
    i, o = regressor_io()
    n = 100_000
    nodes = [reduce_sum("input", "t0")] + [h.make_node("Identity", [f"t{k}"], [f"t{k + 1}" if k + 1 < n else "variable"])
                                         for k in range(n)]
    chain = make_model(h.make_graph(nodes, "identity_chain", i, o, [axes1()])).SerializeToString()
    out.append(Entry(
        "identity-chain-100k", "structure", f"{n} Identity nodes in a chain ({len(chain)} bytes): time limits of a graph walker",
        "upload answered within the upload time budget (a few seconds): 201 (then predict with every feature 1 → 4) or 400 "
        "INVALID_MODEL if the service caps the node count; the event loop keeps answering /health meanwhile",
        chain, [Upload(None, [201, 400], ["INVALID_MODEL"])], [Predict([200], fill=1.0, prediction=4.0, note="only when accepted")],
        timeout=300))
    return out


def malformed(control: bytes) -> list[Entry]:
    onnx, h, T = _onnx()
    from google.protobuf import descriptor_pb2

    fields = top_fields(control)
    graph = next(f for f in fields if f[0] == 7)
    # cut inside the graph field's length varint (2+ bytes since the graph is > 127 bytes)
    cut_varint = control[: graph[2] + 2]
    assert cut_varint[-1] & 0x80, "the graph length is expected to take two bytes or more"
    fdp = descriptor_pb2.FileDescriptorProto(name="hostile.proto", package="hostile.not.onnx", syntax="proto3")
    fdp.message_type.add(name="NotAModel").field.add(name="x", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_INT64)
    tensor = h.make_tensor("just_a_tensor", T.FLOAT, [2, 2], [1.0, 2.0, 3.0, 4.0]).SerializeToString()
    no_graph = make_model(h.make_graph([], "x", [], []))
    no_graph.ClearField("graph")
    no_graph_b = no_graph.SerializeToString()
    wrong_wire = b"".join(control[s:e] for no, _, s, e in fields if no != 7) + int_field(7, 1)
    overflow = no_graph_b + key(7, 2) + varint(1 << 40) + bytes(16)
    garbage = random.Random(20251201).randbytes(512)
    bad = "upload → 400 INVALID_MODEL"
    opset = onnx.ModelProto()
    opset.ParseFromString(control)
    for imp in opset.opset_import:
        if imp.domain in ("", "ai.onnx.ml"):
            imp.version = 999
    return [
        Entry("truncated-half", "malformed", "the control model cut to half its bytes", bad, control[: len(control) // 2], REJECT),
        Entry("truncated-last-byte", "malformed", "the control model without its last byte", bad, control[:-1], REJECT),
        Entry("truncated-in-varint", "malformed", "cut inside a multi-byte length varint (the graph field's length)", bad,
              cut_varint, REJECT),
        Entry("len-prefix-overflow", "malformed", "a graph field whose length prefix claims 2^40 bytes, followed by 16 bytes", bad,
              overflow, REJECT),
        Entry("not-onnx-empty", "not-onnx", "zero bytes (a valid, empty protobuf message)",
              "upload → 400 INVALID_MODEL (or VALIDATION_FAILED: an empty body)", b"",
              [Upload(None, [400], ["INVALID_MODEL", "VALIDATION_FAILED"])]),
        Entry("not-onnx-descriptor-proto", "not-onnx",
              "valid protobuf that is not ONNX: a google.protobuf.FileDescriptorProto (its field 1 is a string where "
              "ModelProto has ir_version, a varint: protobuf keeps it as an unknown field)", bad, fdp.SerializeToString(), REJECT),
        Entry("not-onnx-tensor-proto", "not-onnx", "valid protobuf that is not a model: an onnx.TensorProto", bad, tensor, REJECT),
        Entry("not-onnx-model-without-graph", "not-onnx", "a ModelProto with ir_version and opsets but no graph", bad, no_graph_b,
              REJECT),
        Entry("not-onnx-graph-wrong-wire-type", "not-onnx",
              "the control model with ModelProto.graph (field 7) written as a varint instead of a message", bad, wrong_wire, REJECT),
        Entry("not-onnx-random-bytes", "not-onnx", "512 seeded random bytes", bad, garbage, REJECT),
        Entry("opset-unsupported", "malformed", "the control model importing ai.onnx and ai.onnx.ml at opset 999", bad,
              opset.SerializeToString(), REJECT),
    ]


def controls() -> list[Entry]:
    _, h, T = _onnx()
    i, o = regressor_io()
    reg = make_model(h.make_graph([h.make_node("LinearRegressor", ["input"], ["variable"], domain="ai.onnx.ml",
                                               coefficients=[1.0, 2.0, 3.0, 4.0], intercepts=[0.5], targets=1)],
                                  "control_linear_regressor", i, o), opsets={"ai.onnx.ml": ML_OPSET})
    clf = make_model(h.make_graph([h.make_node("LinearClassifier", ["input"], ["label", "probabilities"], domain="ai.onnx.ml",
                                               coefficients=[1.0, 0, 0, 0, 0, 1.0, 0, 0, 0, 0, 1.0, 0],
                                               intercepts=[0.0, 0.0, 0.0], classlabels_ints=[10, 20, 30],
                                               post_transform="SOFTMAX")],
                                  "control_linear_classifier", i,
                                  [vi("label", T.INT64, ["N"]), vi("probabilities", T.FLOAT, ["N", 3])]),
                     opsets={"ai.onnx.ml": ML_OPSET})
    return [
        Entry("control-linear-regressor", "control",
              "a well-formed LinearRegressor (ai.onnx.ml), 4 features a, b, c, d: 1a + 2b + 3c + 4d + 0.5",
              "upload accepted (201); predict with every feature 1 → 10.5; batch [1, 2] → [10.5, 20.5]",
              reg.SerializeToString(), [Upload(["a", "b", "c", "d"], [201], []), Upload(None, [201], [], "features f0..f3")],
              [Predict([200], fill=1.0, prediction=10.5), Predict([200], instances=[1.0, 2.0], prediction=[10.5, 20.5])]),
        Entry("control-linear-classifier", "control",
              "a well-formed LinearClassifier (ai.onnx.ml), 4 features, labels 10/20/30, probabilities [N, 3]",
              "upload accepted (201); predict with every feature 1 → 200 (3 classes tie: onnxruntime picks 10, confidence 1/3)",
              clf.SerializeToString(), [Upload(None, [201], [])],
              [Predict([200], fill=1.0, prediction=10.0, tolerance=1e-4, note="confidence 0.3333, probabilities [1/3, 1/3, 1/3]")]),
    ]


def all_entries() -> list[Entry]:
    ctl = controls()
    entries = list(ctl)
    entries += external_entries()
    entries += [patched_data_location(varint((1 << 32) + 1), "2p32plus1", "initializer"),
                patched_data_location(varint((1 << 32) + 1), "2p32plus1", "constant"),
                patched_data_location(varint(-((1 << 32) - 1)), "neg2p32minus1", "initializer"),
                split_graph_field(), split_tensor_attribute()]
    entries += [wide_identity(300_000_000),
                wide_reduce_sum(300_000_000, "wide-300m-reducesum", "far over any feature limit; one row would be 1.2 GB"),
                wide_reduce_sum(1 << 40, "wide-2p40-reducesum", "over the JavaScript array length limit (2^32 - 1)"),
                wide_reduce_sum((1 << 63) - 1, "wide-int64max-reducesum", "int64 max, not exact as a JavaScript number"),
                wide_matmul(30_000, [201], "upload accepted (201) quickly (linear-time checks, well under 2 s); predict with every "
                            "feature 1 → 1.0 quickly; batch [1, 2] → [1.0, 2.0]"),
                wide_matmul(100_000, [201, 400], "at the upload schema's 100,000-name limit: accepted (201) and predicts 1.0 if the "
                            "service's feature limit is ≥ 100,000, else 400 FEATURES_INVALID/INVALID_MODEL naming the limit; "
                            "either way answered quickly"),
                per_feature_wide(20_000)]
    entries += runtime_fail() + non_finite() + classifier_shapes() + output_kinds() + structure()
    entries += malformed(ctl[0].data)
    stems = [e.stem for e in entries]
    dup = {s for s in stems if stems.count(s) > 1}
    assert not dup, f"duplicate stems {dup}"
    for e in entries:
        assert re.fullmatch(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", e.stem), f"stem {e.stem} is not a valid model name"
    return entries


def _fmt(v: float) -> str:
    return f"{v:g}"


# --------------------------------------------------------------------------------------------
# Self-check (child process)

def _clean(msg: str, sandbox: str) -> str:
    msg = msg.replace(sandbox, "<sandbox>")
    msg = re.sub(r"\x1b\[[0-9;]*m", "", msg)
    msg = " ".join(msg.split())
    return msg if len(msg) <= 500 else msg[:497] + "..."


def _jsonable(v: float):
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "Infinity" if v > 0 else "-Infinity"
    return round(float(v), 6)


def selfcheck_child(spec_path: str) -> None:
    import numpy as np

    spec = json.loads(Path(spec_path).read_text())
    sandbox = spec["sandbox"]
    data = Path(spec["model"]).read_bytes()
    result: dict[str, Any] = {}
    timings: dict[str, float] = {}

    import onnx

    try:
        proto = onnx.load_model_from_string(data)
        result["onnx_parse"] = "ok"
    except Exception as ex:  # noqa: BLE001
        proto = None
        result["onnx_parse"] = "error: " + _clean(f"{type(ex).__name__}: {ex}", sandbox)
    if proto is not None:
        try:
            onnx.checker.check_model(proto, full_check=True)
            result["onnx_checker"] = "ok"
        except Exception as ex:  # noqa: BLE001
            result["onnx_checker"] = "error: " + _clean(f"{type(ex).__name__}: {ex}", sandbox)
    else:
        result["onnx_checker"] = "not run (does not parse)"

    import onnxruntime as ort

    ort.set_default_logger_severity(4)
    for mode in MODES:
        # the marker lets the parent attribute the strace'd opens to this mode
        try:
            os.close(os.open(os.path.join(sandbox, f".phase-{mode}"), os.O_RDONLY))
        except OSError:
            pass
        r: dict[str, Any] = {}
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        so.log_severity_level = 4
        so.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_DISABLE_ALL if mode == "bytes_opt_disabled"
                                       else ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
        t0 = time.monotonic()
        try:
            src = data if mode.startswith("bytes") else os.path.join(sandbox, "work", "model.onnx")
            sess = ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])
            r["load"] = "ok"
        except Exception as ex:  # noqa: BLE001
            sess = None
            r["load"] = "error: " + _clean(str(ex), sandbox)
        timings[f"{mode}_load_s"] = round(time.monotonic() - t0, 3)
        if sess is not None:
            r["inputs"] = [f"{i.name}: {i.type}{list(i.shape)}" for i in sess.get_inputs()[:3]] + (
                [f"... {len(sess.get_inputs())} inputs"] if len(sess.get_inputs()) > 3 else [])
            r["outputs"] = [f"{o.name}: {o.type}{list(o.shape)}" for o in sess.get_outputs()]
            if spec["skip_run"]:
                r["run"] = spec["skip_run"]
            elif spec["feed"] is None:
                r["run"] = "not run"
            else:
                feeds = {}
                for i in sess.get_inputs():
                    shape = [2 if not isinstance(d, int) or d < 0 else d for d in i.shape]
                    dt = np.float64 if i.type == "tensor(double)" else np.float32
                    feeds[i.name] = np.full(shape, spec["feed"], dtype=dt)
                t0 = time.monotonic()
                try:
                    outs = sess.run(None, feeds)
                    r["run"] = "ok"
                    r["results"] = []
                    for meta, v in zip(sess.get_outputs(), outs):
                        arr = np.asarray(v)
                        if arr.dtype.kind in "fiub":
                            vals = [_jsonable(float(x)) for x in arr.ravel()[:6]]
                        else:
                            vals = [str(x) for x in arr.ravel()[:6]]
                        r["results"].append({"name": meta.name, "dtype": str(arr.dtype), "shape": list(arr.shape), "first": vals})
                    first = np.asarray(outs[0]).ravel() if outs else np.array([])
                    if spec["candidates"] and first.size and first.dtype.kind == "f":
                        x = float(first[0])
                        hits = [label for label, want in spec["candidates"].items()
                                if math.isfinite(x) and abs(x - want) <= 1e-3 * max(1.0, abs(want))]
                        r["value_means"] = hits[0] if hits else f"none of the candidates ({_jsonable(x)})"
                except Exception as ex:  # noqa: BLE001
                    r["run"] = "error: " + _clean(str(ex), sandbox)
                timings[f"{mode}_run_s"] = round(time.monotonic() - t0, 3)
            del sess
        result[mode] = r
    print(json.dumps({"result": result, "timings": timings}))


# --------------------------------------------------------------------------------------------
# Self-check (parent side)

def strace_works() -> bool:
    if not shutil.which("strace"):
        return False
    try:
        p = subprocess.run(["strace", "-f", "-qq", "-e", "trace=openat", "-o", os.devnull, "true"], capture_output=True, timeout=20)
        return p.returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


OPEN_RE = re.compile(r'^\d+\s+(?:open|openat|openat2)\((?:AT_FDCWD|\d+(?:<[^>]*>)?), "((?:[^"\\]|\\.)*)"[^)]*\)\s+=\s+(-?\d+)(.*)$')


def parse_trace(trace: str, sandbox: str) -> dict[str, list[str]]:
    work = os.path.join(sandbox, "work")
    phase = None
    opened: dict[str, list[str]] = {m: [] for m in MODES}
    for line in trace.splitlines():
        m = OPEN_RE.match(line)
        if not m:
            continue
        path, rc, rest = m.group(1), int(m.group(2)), m.group(3)
        full = os.path.normpath(path if os.path.isabs(path) else os.path.join(work, path))
        base = os.path.basename(full)
        if base.startswith(".phase-"):
            phase = base[len(".phase-"):]
            continue
        if phase not in opened:
            continue
        if full.startswith(sandbox + os.sep) or full == sandbox:
            rel = os.path.relpath(full, work)
            if rel in ("model.onnx", "spec.json"):
                continue
        elif full == "/etc/passwd":
            rel = "/etc/passwd"
        else:
            continue
        what = f"{rel} ({'opened' if rc >= 0 else rest.strip().split(' ')[0] or 'failed'})"
        if what not in opened[phase]:
            opened[phase].append(what)
    return opened


def selfcheck(entry: Entry, out_dir: Path, use_strace: bool) -> tuple[dict, dict]:
    sandbox = tempfile.mkdtemp(prefix="hostile-selfcheck-")
    try:
        work = Path(sandbox, "work")
        (work / "models").mkdir(parents=True)
        Path(sandbox, "etc").mkdir()
        for rel, v in DECOYS.items():
            (work / rel).write_bytes(struct.pack("<f", v) * 4)
        shutil.copyfile(out_dir / entry.file, work / "model.onnx")
        spec = {"sandbox": sandbox, "model": str(work / "model.onnx"), "feed": entry.feed, "skip_run": entry.skip_run,
                "candidates": entry.candidates}
        (work / "spec.json").write_text(json.dumps(spec))
        cmd = [sys.executable, str(Path(__file__).resolve()), "--selfcheck", str(work / "spec.json")]
        trace_file = os.path.join(sandbox, "trace.txt")
        if use_strace:
            cmd = ["strace", "-f", "-qq", "-e", "trace=open,openat,openat2", "-o", trace_file] + cmd
        env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1")
        try:
            p = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=entry.timeout, env=env)
        except subprocess.TimeoutExpired:
            return {"selfcheck": f"timed out after {entry.timeout} s"}, {}
        lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
        if p.returncode != 0 or not lines:
            tail = _clean(p.stderr[-600:], sandbox)
            return {"selfcheck": f"the checking process died (exit {p.returncode}): {tail}"}, {}
        got = json.loads(lines[-1])
        result, timings = got["result"], got["timings"]
        if use_strace and os.path.exists(trace_file):
            opened = parse_trace(Path(trace_file).read_text(errors="replace"), sandbox)
            for mode in MODES:
                if mode in result:
                    result[mode]["opened"] = opened.get(mode, [])
        return result, timings
    finally:
        shutil.rmtree(sandbox, ignore_errors=True)


def summarize_reads(result: dict) -> list[str]:
    """Which external files onnxruntime read (by the output value) or opened (by strace), per mode."""
    out = []
    for mode in MODES:
        r = result.get(mode, {})
        means = r.get("value_means", "")
        if means.startswith("read "):
            out.append(f"{mode}: {means[5:]} (the output carries its bytes)")
        opened = [o for o in r.get("opened", []) if "(opened)" in o]
        if opened:
            out.append(f"{mode}: opened {', '.join(o.replace(' (opened)', '') for o in opened)}")
    return out


# --------------------------------------------------------------------------------------------

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", nargs="?", default=str(DEFAULT_OUT), help=f"output folder (default {DEFAULT_OUT})")
    ap.add_argument("--no-selfcheck", action="store_true", help="write the models and a manifest without onnx/onnxruntime checks")
    ap.add_argument("--jobs", type=int, default=2, help="self-checks run at once (default 2)")
    ap.add_argument("--selfcheck", metavar="SPEC", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.selfcheck:
        selfcheck_child(args.selfcheck)
        return

    import numpy
    import onnx
    import onnxruntime

    out = Path(args.out).resolve()
    if out.exists() and any(out.iterdir()) and not (out / "manifest.json").exists():
        sys.exit(f"generate_models.py: {out} exists, is not empty and holds no manifest.json; refusing to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.staging-", dir=out.parent))
    try:
        t0 = time.monotonic()
        entries = all_entries()
        for e in entries:
            (stage / e.file).write_bytes(e.data)
        print(f"generate_models.py: wrote {len(entries)} models in {time.monotonic() - t0:.1f} s", file=sys.stderr)

        results: dict[str, tuple[dict, dict]] = {}
        use_strace = False
        if not args.no_selfcheck:
            use_strace = strace_works()
            print(f"generate_models.py: self-checking with onnx {onnx.__version__}, onnxruntime {onnxruntime.__version__}"
                  f"{', under strace' if use_strace else ' (strace unavailable: opened files not recorded)'}", file=sys.stderr)
            t0 = time.monotonic()
            with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
                for e, res in zip(entries, pool.map(lambda e: selfcheck(e, stage, use_strace), entries)):
                    results[e.stem] = res
            print(f"generate_models.py: self-checks took {time.monotonic() - t0:.1f} s", file=sys.stderr)

        models = []
        for e in entries:
            d: dict[str, Any] = {
                "file": e.file,
                "model_name": e.stem,
                "category": e.category,
                "bytes": len(e.data),
                "sha256": hashlib.sha256(e.data).hexdigest(),
                "attack": e.attack,
                "expected": e.expected,
                "uploads": [u.to_json() for u in e.uploads],
                "predicts": [p.to_json() for p in e.predicts],
            }
            if e.notes:
                d["notes"] = e.notes
            if e.risk:
                d["risk_to_unhardened_service"] = e.risk
            if e.stem in results:
                res = results[e.stem][0]
                d["selfcheck"] = res
                d["onnxruntime_reads_files"] = summarize_reads(res)
                d["onnxruntime_summary"] = {m: res.get(m, {}).get("load", res.get("selfcheck", "?")) for m in MODES}
            models.append(d)
        manifest = {
            "description": "Hostile ONNX models for the service's hardening tests; see test/hostile/README.md",
            "generator": "test/hostile/generate_models.py",
            "versions": {"python": sys.version.split()[0], "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__,
                         "numpy": numpy.__version__},
            "conventions": {
                "upload": "POST /api/v1/models?name=<model_name>&version=<query.version>[&features=<JSON array>] with the "
                          "file as application/octet-stream (or the JSON form with model_data in base64)",
                "expect_code": "when the answer is an error, one of these problem codes (empty: any code)",
                "predict.fill": "POST /api/v1/predict/<model_name> with every feature of the model set to this value "
                                "(features as uploaded, else f0..f<n-1>, or the input names of a per-feature model)",
                "predict.instances_fill": "POST /api/v1/predict/<model_name>/batch, one instance per value, every feature set to it",
                "selfcheck": "what onnx and onnxruntime do with the file; onnxruntime from bytes (as the service does) with graph "
                             "optimizations all and disabled, and from a file path; run on a batch of 2 rows filled with 1 (or "
                             "-1 where noted); value_means: what the first output value shows; opened: files opened (strace)",
                "decoys": {**{k: f"float {v} x4" for k, v in DECOYS.items()},
                           "/etc/passwd": "the real file (its first 4 bytes as a float)"},
                "inline_value": INLINE_VALUE,
                "strace": use_strace,
            },
            "models": models,
        }
        (stage / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
        (stage / "selfcheck-timings.json").write_text(
            json.dumps({k: v[1] for k, v in results.items()}, indent=2, sort_keys=True) + "\n")

        # swap into place
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.rename(out, old / "x")
            os.rename(stage, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(stage, out)
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)
    print(f"generate_models.py: {len(entries)} models and manifest.json in {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
