"""Schemathesis hooks for test/hostile/fuzz_openapi.sh (loaded through SCHEMATHESIS_HOOKS).

The OpenAPI document describes the predict bodies as {features: {<any name>: number}}, so a
fuzzer left alone only ever sends unknown feature names and never reaches a model. These hooks
make about half of the positive-mode predict cases use the real feature names of the model in the
path (names read by fuzz_openapi.sh from GET /api/v1/models into the file HOSTILE_FUZZ_MODELS_FILE), filled
with hypothesis floats (extremes included: ±1e30, 3.5e38, -0.0, subnormals, huge integers), so the
inference path, the float32 conversion and the cache key are fuzzed too. Negative-mode cases are
left alone, so negative_data_rejection stays meaningful.

POST /api/v1/models also gets its application/octet-stream body added to the document (the raw
upload, which the served document leaves out), half of those uploads carrying a real model.

HOSTILE_FUZZ_DEBUG=1 prints one line per predict/upload case to the log (to see the hooks work).
"""
from __future__ import annotations

import json
import os
import sys
from typing import Any

import schemathesis
from hypothesis import strategies as st

_MODELS_FILE = os.environ.get("HOSTILE_FUZZ_MODELS_FILE", "")
MODELS: dict[str, list[str]] = json.loads(open(_MODELS_FILE).read()) if _MODELS_FILE and os.path.exists(_MODELS_FILE) else {}

# Extremes included, up to what a model can turn into a finite answer: a float64 model fed 1e176
# answers -Infinity, which the service refuses to return as a number (a 500 INFERENCE_FAILED by
# design: a non-finite answer is never a 200). Past float32's range a float32 model's input is a 400.
NUMBERS = st.one_of(
    st.floats(min_value=-1e30, max_value=1e30, allow_nan=False, allow_infinity=False),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -0.0, 3.5e38, -3.5e38, 1e-45, 5e-324, 2**53 + 1]),
)


def _positive(case: Any) -> bool:
    meta = getattr(case, "meta", None) or getattr(case, "_meta", None)
    if meta is None:
        return False
    mode = getattr(getattr(meta, "generation", None), "mode", None)
    if str(getattr(mode, "value", mode)).lower() != "positive":
        return False
    components = getattr(meta, "components", {}) or {}
    for info in components.values():
        m = getattr(info, "mode", None)
        if m is not None and str(getattr(m, "value", m)).lower() != "positive":
            return False
    return True


def _model_of(case: Any) -> str | None:
    raw = (case.path_parameters or {}).get("model_id")
    if not isinstance(raw, str):
        return None
    name = raw.split("@", 1)[0]
    return name if name in MODELS else None


DEBUG = os.environ.get("HOSTILE_FUZZ_DEBUG") == "1"
OCTET_STREAM = os.environ.get("HOSTILE_FUZZ_OCTET_STREAM", "1") == "1"
SAMPLE_MODEL = os.environ.get("HOSTILE_FUZZ_SAMPLE_MODEL", "")
SAMPLE_BYTES = open(SAMPLE_MODEL, "rb").read() if SAMPLE_MODEL and os.path.exists(SAMPLE_MODEL) else b""


@schemathesis.hook
def before_load_schema(context, raw_schema):
    """The document lists only the JSON upload; the raw upload (application/octet-stream with
    name, version, features, promote and metadata in the query) is the service's main way in,
    so it is added here (HOSTILE_FUZZ_OCTET_STREAM=0 leaves the document as served)."""
    if not OCTET_STREAM:
        return
    op = raw_schema.get("paths", {}).get("/api/v1/models", {}).get("post")
    if not isinstance(op, dict):
        return
    content = op.setdefault("requestBody", {"required": True}).setdefault("content", {})
    content.setdefault("application/octet-stream", {"schema": {"type": "string", "format": "binary"}})


@schemathesis.hook
def flatmap_case(context, case):
    path = getattr(case, "path", "") or ""
    if DEBUG and (path == "/api/v1/models" or path.startswith("/api/v1/predict/")):
        print(f"hook: {case.method} {path} media={case.media_type} positive={_positive(case)} model={_model_of(case)}",
              file=sys.stderr)
    if (path == "/api/v1/models" and case.method.upper() == "POST" and SAMPLE_BYTES
            and (case.media_type or "").startswith("application/octet-stream") and _positive(case)):
        # half of the raw uploads carry a real model, so the query parameters are what is fuzzed
        def with_model(use_real):
            if use_real:
                case.body = SAMPLE_BYTES
            return case

        return st.booleans().map(with_model)
    if not path.startswith("/api/v1/predict/") or not isinstance(case.body, dict) or not _positive(case):
        return st.just(case)
    model = _model_of(case)
    if model is None or not MODELS[model]:
        return st.just(case)
    row = st.fixed_dictionaries({name: NUMBERS for name in MODELS[model]})

    def build(choice):
        use_real, feats, instances = choice
        if not use_real:
            return case
        body = dict(case.body)
        body.pop("model_id", None)  # a generated model_id would differ from the path's: MODEL_ID_MISMATCH
        if path.endswith("/batch"):
            body["instances"] = instances
        else:
            body["features"] = feats
        case.body = body
        return case

    return st.tuples(st.booleans(), row, st.lists(row, min_size=1, max_size=4)).map(build)
