#!/usr/bin/env python3
"""Writes the two bad iris versions the rollout tests roll out (and roll back).

Both take the same four features as models/iris-logreg.onnx, so they can be rolled out as new
versions of that model, and both pass the service's upload checks (their trial run on a row of
ones answers finite, well-shaped outputs):

- iris-fails-on-long-sepals.onnx: logistic regression whose probabilities are NaN when the sepal
  length is 6 cm or more (Sqrt(6 - x0) / Sqrt(6 - x0) multiplies them): the service answers those
  rows with 500 INFERENCE_FAILED, about 40 % of iris.
- iris-wrong-labels.onnx: logistic regression trained on shifted labels ((y + 1) % 3): it answers
  every row, and the ground truth disagrees with almost all of them.

And iris-truth.json: 30 rows of iris (every fifth), each with its features and its true label, for
the tests' traffic and the ground-truth feedback they send.

Run with the models venv (models/generate.sh creates it):
  .cache/venv-models/bin/python test/rollout/generate.py
"""

import json
import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np
import onnx
from onnx import helper, numpy_helper
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn import datasets
from sklearn.linear_model import LogisticRegression

HERE = os.path.dirname(os.path.abspath(__file__))
TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}


def export(est, name: str, features: list[str]) -> onnx.ModelProto:
    onx = convert_sklearn(
        est,
        initial_types=[("float_input", FloatTensorType([None, len(features)]))],
        target_opset=TARGET_OPSET,
        options={id(est): {"zipmap": False}},
        name=name,
        doc_string=f"{name}: a bad iris version for the rollout tests (test/rollout/generate.py)",
    )
    onx.model_version = 1
    del onx.metadata_props[:]
    for k, v in sorted({"name": name, "dataset": "iris", "task": "classification", "features": json.dumps(features)}.items()):
        onx.metadata_props.add(key=k, value=v)
    return onx


def nan_for_long_sepals(onx: onnx.ModelProto) -> None:
    """probabilities *= Sqrt(6 - x0) / Sqrt(6 - x0): 1 below 6 cm, NaN from 6 cm on."""
    g = onx.graph
    producer = next(n for n in g.node if "probabilities" in n.output)
    producer.output[list(producer.output).index("probabilities")] = "probabilities_raw"
    g.initializer.extend(
        [
            numpy_helper.from_array(np.array([0], dtype=np.int64), "col_start"),
            numpy_helper.from_array(np.array([1], dtype=np.int64), "col_end"),
            numpy_helper.from_array(np.array([1], dtype=np.int64), "col_axis"),
            numpy_helper.from_array(np.array(6.0, dtype=np.float32), "six"),
        ]
    )
    g.node.extend(
        [
            helper.make_node("Slice", ["float_input", "col_start", "col_end", "col_axis"], ["sepal_length"]),
            helper.make_node("Sub", ["six", "sepal_length"], ["room"]),
            helper.make_node("Sqrt", ["room"], ["root"]),
            helper.make_node("Div", ["root", "root"], ["one_or_nan"]),
            helper.make_node("Mul", ["probabilities_raw", "one_or_nan"], ["probabilities"]),
        ]
    )


def main() -> None:
    iris = datasets.load_iris()
    X, y = iris.data.astype(np.float64), iris.target
    features = list(iris.feature_names)

    failing = LogisticRegression(max_iter=1000).fit(X, y)
    onx = export(failing, "iris-fails-on-long-sepals", features)
    nan_for_long_sepals(onx)
    onnx.checker.check_model(onx, full_check=True)
    with open(os.path.join(HERE, "iris-fails-on-long-sepals.onnx"), "wb") as f:
        f.write(onx.SerializeToString(deterministic=True))

    wrong = LogisticRegression(max_iter=1000).fit(X, (y + 1) % 3)
    onx = export(wrong, "iris-wrong-labels", features)
    onnx.checker.check_model(onx, full_check=True)
    with open(os.path.join(HERE, "iris-wrong-labels.onnx"), "wb") as f:
        f.write(onx.SerializeToString(deterministic=True))
    rows = [{"features": {f: float(v) for f, v in zip(features, X[i])}, "label": int(y[i])} for i in range(0, len(X), 5)]
    with open(os.path.join(HERE, "iris-truth.json"), "w") as f:
        json.dump({"features": features, "rows": rows}, f, indent=1, sort_keys=True)
        f.write("\n")
    print("wrote iris-fails-on-long-sepals.onnx, iris-wrong-labels.onnx and iris-truth.json in", HERE)


if __name__ == "__main__":
    main()
