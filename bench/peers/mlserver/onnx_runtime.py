"""A custom MLServer inference runtime for ONNX models, on onnxruntime.

No official ONNX runtime for MLServer is published (there are mlserver-sklearn, -xgboost,
-lightgbm, -mlflow, ... but no mlserver-onnx), so this is the documented way: a subclass of
mlserver.MLModel with load() and predict(), named in model-settings.json as
"implementation": "onnx_runtime.OnnxRuntime" (this folder is on PYTHONPATH; peers.ts sets it).

Open Inference Protocol (V2) in and out: one FP32 input tensor [N, features] (the model's
input is named "input"), outputs "output_label" (INT64 [N]) and, for classifiers, the class
probabilities as FP32 [N, classes]. skl2onnx's default classifier export ends in a ZipMap
(output_probability is a list of {class: p} dicts, not a tensor); it is turned back into a
[N, classes] array in class order, as any user of such a model in Python does.

settings.json: parallel_workers 0, so inference runs in the server process; measured here (2
cores, iris-logreg, 32 connections) 1 parallel worker was no faster and 2 were half as fast.
"""

from __future__ import annotations

import ctypes
import signal
import sys

import numpy as np
import onnxruntime as ort
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.errors import InferenceError
from mlserver.types import InferenceRequest, InferenceResponse, ResponseOutput
from mlserver.utils import get_model_uri

if sys.platform == "linux":
    # Die with the parent (the benchmark, or MLServer's main process for parallel workers).
    ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG

_NUMPY_TYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64}


class OnnxRuntime(MLModel):
    async def load(self) -> bool:
        path = await get_model_uri(self._settings, wellknown_filenames=["model.onnx"])
        options = ort.SessionOptions()
        # One intra-op thread: the machine has few cores and one request is one small run.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        inputs = self._session.get_inputs()
        if len(inputs) != 1:
            raise InferenceError(f"{self.name}: expected one [N, features] input, got {len(inputs)}")
        self._input = inputs[0]
        self._dtype = _NUMPY_TYPES[self._input.type]
        outputs = self._session.get_outputs()
        self._output_names = [o.name for o in outputs]
        # ZipMap outputs (seq(map(...))) become [N, classes] float tensors.
        self._zipmap = {o.name for o in outputs if o.type.startswith("seq(map(")}
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        if len(payload.inputs) != 1:
            raise InferenceError(f"{self.name}: expected one input tensor, got {len(payload.inputs)}")
        x = NumpyCodec.decode_input(payload.inputs[0])
        x = np.asarray(x, dtype=self._dtype).reshape(-1, self._input.shape[1])
        results = self._session.run(self._output_names, {self._input.name: x})
        outputs: list[ResponseOutput] = []
        for name, value in zip(self._output_names, results):
            if name in self._zipmap:
                # A list of {class: probability} dicts, keys in class order.
                value = np.array([list(row.values()) for row in value], dtype=np.float32)
            outputs.append(NumpyCodec.encode_output(name=name, payload=np.asarray(value)))
        return InferenceResponse(
            model_name=self.name, model_version=self.version, id=payload.id, outputs=outputs
        )
