#!/usr/bin/env python3
"""Trains the sample models and exports them to ONNX with skl2onnx.

Run through models/generate.sh (which provides the pinned venv). For every model
in MODELS it writes models/<name>.onnx and models/<name>.json (reference
predictions of scikit-learn and of onnxruntime on 20 held-out samples).

Everything is seeded and single-threaded, so two runs give byte-identical files.
Exits non-zero if onnxruntime predicts a different label than scikit-learn for
any reference sample.

Usage: generate.py [--out DIR] [--check] [NAME ...]
  --out DIR  write the files to DIR instead of models/
  --check    write nothing; fail if a generated file differs from the one on disk
  NAME       only these models (default: all)
"""

import os

# Before numpy/scipy load: single-threaded BLAS/OpenMP for deterministic results.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import json
import sys
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import onnx
import onnxruntime as ort
import skl2onnx
import sklearn
from sklearn import datasets
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType

MODELS_DIR = os.path.dirname(os.path.abspath(__file__))

# Highest opsets used; onnxruntime(-node) 1.30 supports well beyond these.
# skl2onnx only lowers them (to the smallest opset each model needs).
TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}
SEED = 0
N_SAMPLES = 20
TEST_SIZE = 0.25
RTOL = 1e-4  # agreement: |a - b| <= RTOL * max(|a|, |b|) + ATOL
ATOL = 1e-6  # absolute floor, for near-zero probabilities (float32 vs float64)
MAX_LARGE_BYTES = 6 * 1024 * 1024


# --------------------------------------------------------------------------- data


@dataclass
class Dataset:
    name: str
    X: np.ndarray  # float64
    y: np.ndarray
    features: list[str]
    target_names: list[str] | None = None


def load_dataset(name: str) -> Dataset:
    """scikit-learn's bundled data sets (shipped inside the wheel, no download)."""
    loader = {
        "iris": datasets.load_iris,
        "wine": datasets.load_wine,
        "breast_cancer": datasets.load_breast_cancer,
        "diabetes": datasets.load_diabetes,
        "digits": datasets.load_digits,
    }[name]
    bunch = loader()
    if name == "digits":
        features = [f"pixel_{r}_{c}" for r in range(8) for c in range(8)]
    else:
        features = [str(f) for f in bunch.feature_names]
    X = np.asarray(bunch.data, dtype=np.float64)
    assert X.shape[1] == len(features), (name, X.shape, len(features))
    target_names = None
    if "target_names" in bunch:
        target_names = [str(t) for t in bunch.target_names]
    return Dataset(name, X, np.asarray(bunch.target), features, target_names)


# ------------------------------------------------------------------------- models


@dataclass
class Spec:
    name: str
    dataset: str
    task: str  # "classification" | "regression"
    make: Callable[[], Any]  # returns an unfitted estimator
    dtype: str = "float32"  # "float32" | "float64"
    mode: str = "tensor"  # "tensor" | "per_feature"
    zipmap: bool = True  # classifiers: keep skl2onnx's default ZipMap output
    string_labels: bool = False  # train on the class names instead of 0..k-1
    options: dict = field(default_factory=dict)


def iris_per_feature_pipeline() -> Pipeline:
    # One ONNX input per feature: the ColumnTransformer addresses columns 0..3,
    # which skl2onnx maps onto the four [None, 1] inputs (in order) and concatenates.
    return Pipeline(
        [
            ("columns", ColumnTransformer([("scale", StandardScaler(), [0, 1, 2, 3])])),
            ("classifier", LogisticRegression(max_iter=1000, random_state=SEED)),
        ]
    )


MODELS: list[Spec] = [
    Spec(
        "iris-logreg", "iris", "classification",
        lambda: LogisticRegression(max_iter=1000, random_state=SEED),
    ),
    Spec(
        "iris-species", "iris", "classification",
        lambda: LogisticRegression(max_iter=1000, random_state=SEED),
        string_labels=True,
    ),
    Spec(
        "wine-forest", "wine", "classification",
        lambda: RandomForestClassifier(n_estimators=50, max_depth=6, random_state=SEED),
        zipmap=False,
    ),
    Spec(
        "breast-cancer-gbc", "breast_cancer", "classification",
        lambda: GradientBoostingClassifier(
            n_estimators=100, max_depth=3, random_state=SEED
        ),
    ),
    Spec(
        "breast-cancer-pipeline", "breast_cancer", "classification",
        lambda: Pipeline(
            [
                ("scaler", StandardScaler()),
                ("classifier", LogisticRegression(max_iter=1000, random_state=SEED)),
            ]
        ),
    ),
    Spec(
        "diabetes-linear", "diabetes", "regression",
        LinearRegression,
        dtype="float64",
    ),
    Spec(
        "diabetes-forest", "diabetes", "regression",
        lambda: RandomForestRegressor(n_estimators=50, max_depth=8, random_state=SEED),
    ),
    Spec(
        "diabetes-gbr", "diabetes", "regression",
        lambda: GradientBoostingRegressor(
            n_estimators=100, max_depth=3, learning_rate=0.1, random_state=SEED
        ),
    ),
    Spec(
        "iris-mlp", "iris", "classification",
        lambda: MLPClassifier(
            hidden_layer_sizes=(16,), max_iter=5000, random_state=SEED
        ),
        zipmap=False,
    ),
    Spec(
        "iris-per-feature", "iris", "classification",
        iris_per_feature_pipeline,
        mode="per_feature",
        zipmap=False,
    ),
    Spec(
        "digits-forest-large", "digits", "classification",
        lambda: RandomForestClassifier(n_estimators=150, random_state=SEED),
        zipmap=False,
    ),
]


# ------------------------------------------------------------------------ helpers


def np_dtype(spec: Spec):
    return np.float64 if spec.dtype == "float64" else np.float32


def initial_types(spec: Spec, features: list[str]):
    tensor_type = DoubleTensorType if spec.dtype == "float64" else FloatTensorType
    if spec.mode == "per_feature":
        return [(f, tensor_type([None, 1])) for f in features]
    return [("input", tensor_type([None, len(features)]))]


def ort_feeds(spec: Spec, features: list[str], X: np.ndarray) -> dict[str, np.ndarray]:
    Xt = X.astype(np_dtype(spec))
    if spec.mode == "per_feature":
        return {name: Xt[:, i : i + 1] for i, name in enumerate(features)}
    return {"input": Xt}


def py_label(v) -> int | str:
    if isinstance(v, (str, np.str_)):
        return str(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    raise TypeError(f"unexpected label {v!r} ({type(v)})")


def py_float(v) -> float:
    f = float(v)
    if not np.isfinite(f):
        raise ValueError(f"non-finite value {v!r}")
    return f


def close(a: float, b: float) -> bool:
    return abs(a - b) <= RTOL * max(abs(a), abs(b)) + ATOL


def rename_graph_inputs(onx: onnx.ModelProto, names: list[str]) -> None:
    """Gives the graph inputs, in order, exactly the given names.

    skl2onnx replaces every character outside [A-Za-z0-9_] of an input name with
    '_' ("sepal length (cm)" -> "sepal_length__cm_"); ONNX itself allows any
    string, so the original feature names are restored here.
    """
    graph = onx.graph
    if len(graph.input) != len(names):
        raise AssertionError(f"{len(graph.input)} graph inputs, {len(names)} names")
    taken = {v.name for v in graph.output} | {t.name for t in graph.initializer}
    for node in graph.node:
        taken.update(node.output)
        if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute):
            raise NotImplementedError("renaming inputs used by subgraphs")
    mapping = {}
    for inp, new in zip(graph.input, names):
        if new != inp.name and new in taken:
            raise AssertionError(f"input name {new!r} clashes with a tensor of the graph")
        mapping[inp.name] = new
        inp.name = new
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name in mapping:
                node.input[i] = mapping[name]
    for vi in graph.value_info:
        if vi.name in mapping:
            vi.name = mapping[vi.name]


def export(spec: Spec, est, features: list[str]) -> onnx.ModelProto:
    options = dict(spec.options)
    final = est.steps[-1][1] if isinstance(est, Pipeline) else est
    if spec.task == "classification" and not spec.zipmap:
        options["zipmap"] = False
    onx = convert_sklearn(
        est,
        initial_types=initial_types(spec, features),
        target_opset=TARGET_OPSET,
        # Options go to the final estimator (the classifier of a Pipeline).
        options={id(final): options} if options else None,
        # Fixed graph name: skl2onnx otherwise uses a random uuid (not reproducible).
        name=spec.name,
        doc_string=f"{spec.name}: {type(est).__name__} trained on scikit-learn's "
        f"{spec.dataset} data set (models/generate.py)",
    )
    if spec.mode == "per_feature":
        rename_graph_inputs(onx, features)
    onx.model_version = 1
    meta = {
        "name": spec.name,
        "dataset": spec.dataset,
        "task": spec.task,
        "features": json.dumps(features),
    }
    del onx.metadata_props[:]
    for k in sorted(meta):
        onx.metadata_props.add(key=k, value=meta[k])
    onnx.checker.check_model(onx, full_check=True)
    return onx


def run_onnx(
    spec: Spec, model_bytes: bytes, features: list[str], X: np.ndarray, classes
) -> list[dict]:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])
    outputs = sess.run(None, ort_feeds(spec, features, X))
    names = [o.name for o in sess.get_outputs()]
    res = dict(zip(names, outputs))
    rows = []
    if spec.task == "regression":
        values = np.asarray(res["variable"]).reshape(-1)
        return [{"value": py_float(v)} for v in values]
    label_key = "output_label" if spec.zipmap else "label"
    prob_key = "output_probability" if spec.zipmap else "probabilities"
    labels, probs = res[label_key], res[prob_key]
    for i in range(len(X)):
        if spec.zipmap:
            row = probs[i]  # dict class -> probability
            if set(row.keys()) != set(classes):
                raise AssertionError(f"{spec.name}: ZipMap keys {sorted(row)} != {classes}")
            p = [row[c] for c in classes]
        else:
            p = list(np.asarray(probs[i]).reshape(-1))
        rows.append({"label": py_label(labels[i]), "probabilities": [py_float(x) for x in p]})
    return rows


def run_sklearn(spec: Spec, est, X: np.ndarray) -> list[dict]:
    if spec.task == "regression":
        return [{"value": py_float(v)} for v in est.predict(X).reshape(-1)]
    labels = est.predict(X)
    probs = est.predict_proba(X)
    return [
        {"label": py_label(l), "probabilities": [py_float(x) for x in p]}
        for l, p in zip(labels, probs)
    ]


def compare(spec: Spec, sk: list[dict], rt: list[dict]) -> tuple[int, int, int, list[str]]:
    """Returns (#label agreements, #numeric agreements, #both, messages)."""
    label_ok = num_ok = both = 0
    msgs = []
    for i, (a, b) in enumerate(zip(sk, rt)):
        if spec.task == "regression":
            lo = True
            no = close(a["value"], b["value"])
        else:
            lo = a["label"] == b["label"]
            no = len(a["probabilities"]) == len(b["probabilities"]) and all(
                close(x, y) for x, y in zip(a["probabilities"], b["probabilities"])
            )
            if not lo:
                msgs.append(f"sample {i}: label sklearn={a['label']!r} onnxruntime={b['label']!r}")
        if not no:
            msgs.append(f"sample {i}: numbers differ: sklearn={a} onnxruntime={b}")
        label_ok += lo
        num_ok += no
        both += lo and no
    return label_ok, num_ok, both, msgs


def dump_json(obj) -> bytes:
    # allow_nan=False: the reference must be strict JSON.
    return (
        json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"
    ).encode("utf-8")


def write_atomic(path: str, data: bytes) -> None:
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


# --------------------------------------------------------------------------- main


def build(spec: Spec) -> tuple[bytes, bytes, str]:
    ds = load_dataset(spec.dataset)
    y = ds.y
    if spec.string_labels:
        y = np.asarray([ds.target_names[i] for i in ds.y], dtype=object).astype(str)
    stratify = y if spec.task == "classification" else None
    X_train, X_test, y_train, _ = train_test_split(
        ds.X, y, test_size=TEST_SIZE, random_state=SEED, stratify=stratify
    )
    pick = np.sort(
        np.random.RandomState(SEED).choice(len(X_test), size=N_SAMPLES, replace=False)
    )
    X_ref = X_test[pick]

    est = spec.make()
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        est.fit(X_train, y_train)

    onx = export(spec, est, ds.features)
    model_bytes = onx.SerializeToString(deterministic=True)

    classes = None
    if spec.task == "classification":
        classes = [py_label(c) for c in est.classes_]

    sk = run_sklearn(spec, est, X_ref)
    rt = run_onnx(spec, model_bytes, ds.features, X_ref, classes)
    label_ok, num_ok, both, msgs = compare(spec, sk, rt)

    ref: dict[str, Any] = {
        "name": spec.name,
        "task": spec.task,
        "estimator": type(est).__name__,
        "dataset": spec.dataset,
        "features": ds.features,
        "input": {"mode": spec.mode, "dtype": spec.dtype},
    }
    if classes is not None:
        ref["classes"] = classes
    ref["samples"] = [
        {
            "features": {f: py_float(v) for f, v in zip(ds.features, x)},
            "sklearn": s,
            "onnxruntime": r,
        }
        for x, s, r in zip(X_ref, sk, rt)
    ]
    json_bytes = dump_json(ref)

    head = f"{spec.name:24s} {len(model_bytes):>9,d} B  agree (sklearn vs onnxruntime): "
    if spec.task == "classification":
        summary = (
            f"{head}labels {label_ok}/{N_SAMPLES}, probabilities {num_ok}/{N_SAMPLES}, "
            f"both {both}/{N_SAMPLES}"
        )
    else:
        summary = f"{head}values {num_ok}/{N_SAMPLES}"
    for m in msgs:
        summary += f"\n    {m}"
    if label_ok != N_SAMPLES:
        raise SystemExit(f"{summary}\nerror: {spec.name}: onnxruntime and sklearn disagree on labels")
    if spec.name == "digits-forest-large" and not (
        2 * 1024 * 1024 <= len(model_bytes) <= MAX_LARGE_BYTES
    ):
        raise SystemExit(f"error: {spec.name} is {len(model_bytes)} bytes, want 2-6 MiB")
    return model_bytes, json_bytes, summary


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=MODELS_DIR)
    ap.add_argument("--check", action="store_true")
    ap.add_argument("names", nargs="*")
    args = ap.parse_args()

    known = {s.name for s in MODELS}
    unknown = [n for n in args.names if n not in known]
    if unknown:
        ap.error(f"unknown model(s) {unknown}; known: {sorted(known)}")
    specs = [s for s in MODELS if not args.names or s.name in args.names]

    print(
        f"python {sys.version.split()[0]}, numpy {np.__version__}, scikit-learn "
        f"{sklearn.__version__}, skl2onnx {skl2onnx.__version__}, onnx {onnx.__version__}, "
        f"onnxruntime {ort.__version__}; target opset {TARGET_OPSET}"
    )
    os.makedirs(args.out, exist_ok=True)
    stale = []
    for spec in specs:
        model_bytes, json_bytes, summary = build(spec)
        print(summary, flush=True)
        for ext, data in ((".onnx", model_bytes), (".json", json_bytes)):
            path = os.path.join(args.out, spec.name + ext)
            if args.check:
                try:
                    with open(path, "rb") as f:
                        same = f.read() == data
                except FileNotFoundError:
                    same = False
                if not same:
                    stale.append(path)
            else:
                write_atomic(path, data)
    if stale:
        print("error: these files differ from a fresh generation:", *stale, sep="\n  ", file=sys.stderr)
        return 1
    print(("checked" if args.check else "wrote") + f" {len(specs)} model(s) in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
