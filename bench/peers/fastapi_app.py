"""The specification's own stack, as a baseline peer for `make bench`: FastAPI on uvicorn
(uvloop, httptools) with onnxruntime, written the way a competent FastAPI user would.

    uvicorn fastapi_app:app --app-dir bench/peers --host 127.0.0.1 --port 8090 \
        --loop uvloop --http httptools --workers 1 --no-access-log

Routes: GET /health, POST /api/v1/predict/{model_id} (the specification's PredictionRequest ->
PredictionResponse, plus probabilities/label/model_id/prediction_id as the project answers),
POST /api/v1/predict/{model_id}/batch ({instances: [features, ...]} -> {predictions: [...]},
one ONNX run, not cached).

Each worker process opens every ONNX session once, at start (the lifespan), from the sample
models (PEER_MODELS_DIR, default <repo>/models; PEER_MODELS: comma-separated names, default all),
feature names and classes from models/<name>.json. Answers are cached for CACHE_TTL_SECONDS (60):
in this process (a dict with expiry, at most CACHE_MAX_ENTRIES) or, when REDIS_URL is set, in
Redis through redis.asyncio (fail-open: a Redis error or a REDIS_TIMEOUT_MS timeout is a miss).
The key is model, version and the feature vector in the model's order.

Where inference runs: INLINE in the async handler (PEER_INFERENCE=inline, the default), not in
the threadpool. Measured on iris-logreg (uncached, wrk 32 connections 10 s, 1 worker, this shared
2-core machine, alternating runs): inline 1,900-2,500 req/s at 340-410 CPU us/request, against
1,250-1,300 req/s at ~620 CPU us/request with `await run_in_threadpool(...)`
(PEER_INFERENCE=threadpool; a sync `def` route is the same threadpool hop). One run of a small
model takes tens of microseconds, less than handing it to a thread and back costs, so blocking the
event loop for it is the cheaper choice; a model that takes milliseconds per run would favour the
threadpool (or more workers).
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import math
import os
import signal
import sys
import time
import uuid
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import numpy as np
import onnxruntime as ort
from fastapi import FastAPI, HTTPException, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

if sys.platform == "linux" and os.environ.get("PEER_DIE_WITH_PARENT") == "1":
    # Started by bench/peers/peers.ts: a worker dies with its parent (uvicorn's supervisor, or
    # the benchmark itself with one worker), so no server outlives a killed benchmark.
    ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG

ROOT = Path(__file__).resolve().parents[2]
MODELS_DIR = Path(os.environ.get("PEER_MODELS_DIR", ROOT / "models"))
MODEL_NAMES = [n for n in os.environ.get("PEER_MODELS", "").split(",") if n]
CACHE_TTL_SECONDS = float(os.environ.get("CACHE_TTL_SECONDS", "60"))
CACHE_MAX_ENTRIES = int(os.environ.get("CACHE_MAX_ENTRIES", "100000"))
REDIS_URL = os.environ.get("REDIS_URL") or None
REDIS_TIMEOUT_S = float(os.environ.get("REDIS_TIMEOUT_MS", "50")) / 1000
INFERENCE = os.environ.get("PEER_INFERENCE", "inline")
if INFERENCE not in ("inline", "threadpool"):
    raise SystemExit(f"PEER_INFERENCE must be inline or threadpool, not {INFERENCE!r}")


# --- the specification's data models (plus the project's extra answer fields) -------------

class PredictionRequest(BaseModel):
    features: Dict[str, float]
    model_id: Optional[str] = None  # the path names the model; the body may repeat it


class Prediction(BaseModel):
    prediction: float  # the label when numeric, the class index for string labels, or the value
    confidence: Optional[float]  # the predicted class's probability; None for regressors
    probabilities: Optional[List[float]] = None
    label: Optional[str] = None  # the predicted label when it is a string


class PredictionResponse(Prediction):
    timestamp: datetime
    model_version: str
    model_id: str
    prediction_id: str


class BatchPredictionRequest(BaseModel):
    instances: List[Dict[str, float]] = Field(min_length=1, max_length=10_000)
    model_id: Optional[str] = None


class BatchPredictionResponse(BaseModel):
    predictions: List[Prediction]
    timestamp: datetime
    model_version: str
    model_id: str
    prediction_ids: List[str]


# --- models ---------------------------------------------------------------------------------

_NUMPY_TYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64}


class OnnxModel:
    """One ONNX session and what the model's json says about its features and classes."""

    def __init__(self, path: Path, meta: Dict[str, Any]) -> None:
        options = ort.SessionOptions()
        # One intra-op thread per session: small models, few cores, and one run per request.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.name: str = meta["name"]
        self.version = str(meta.get("version", "1"))
        self.features: List[str] = meta["features"]
        self.feature_set = frozenset(self.features)
        self.classification = meta.get("task") == "classification"
        self.classes: List[Union[int, str]] = meta.get("classes") or []
        inputs = self.session.get_inputs()
        self.per_feature = meta.get("input", {}).get("mode") == "per_feature"
        self.inputs = [i.name for i in inputs]
        self.dtype = _NUMPY_TYPES[inputs[0].type]
        outputs = self.session.get_outputs()
        if self.classification:
            # skl2onnx: the label first, then the probabilities: a [N, classes] tensor or,
            # with its default ZipMap, a list of {class: probability} dicts.
            self.outputs = [o.name for o in outputs[:2]]
            self.zipmap = len(outputs) > 1 and outputs[1].type.startswith("seq(map(")
            self.class_index = {c: i for i, c in enumerate(self.classes)}
        else:
            self.outputs = [outputs[0].name]
            self.zipmap = False

    def row(self, features: Dict[str, float]) -> List[float]:
        """The feature vector in the model's order; 400 naming what is missing or unknown."""
        try:
            row = [features[n] for n in self.features]
        except KeyError:
            row = None
        if row is None or len(features) != len(self.features):
            missing = [n for n in self.features if n not in features]
            unknown = [n for n in features if n not in self.feature_set]
            raise HTTPException(400, detail={"missing": missing, "unknown": unknown})
        bad = [n for n, v in zip(self.features, row) if not math.isfinite(v)]
        if bad:
            raise HTTPException(400, detail={"not_finite": bad})
        return row

    def predict(self, rows: List[List[float]]) -> List[Prediction]:
        x = np.asarray(rows, dtype=self.dtype)
        if self.per_feature:
            feeds = {name: x[:, i : i + 1] for i, name in enumerate(self.inputs)}
        else:
            feeds = {self.inputs[0]: x}
        results = self.session.run(self.outputs, feeds)
        if not self.classification:
            values = np.asarray(results[0]).reshape(len(rows), -1)[:, 0]
            return [Prediction(prediction=float(v), confidence=None) for v in values]
        labels = results[0].tolist()
        if len(results) < 2:
            probs: List[Optional[List[float]]] = [None] * len(rows)
        elif self.zipmap:
            probs = [[float(p) for p in d.values()] for d in results[1]]
        else:
            probs = results[1].tolist()
        out = []
        for label, p in zip(labels, probs):
            index = self.class_index[label]
            out.append(
                Prediction(
                    prediction=float(label) if not isinstance(label, str) else float(index),
                    confidence=p[index] if p is not None else None,
                    probabilities=p,
                    label=label if isinstance(label, str) else None,
                )
            )
        return out


def load_models() -> Dict[str, OnnxModel]:
    names = MODEL_NAMES or sorted(p.stem for p in MODELS_DIR.glob("*.onnx"))
    models = {}
    for name in names:
        meta = json.loads((MODELS_DIR / f"{name}.json").read_text())
        models[name] = OnnxModel(MODELS_DIR / f"{name}.onnx", meta)
    return models


# --- cache ------------------------------------------------------------------------------------

class MemoryCache:
    """A dict with expiry: entries live ttl seconds; at most max_entries (oldest evicted first)."""

    def __init__(self, ttl: float, max_entries: int) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self.entries: Dict[Any, tuple[float, Prediction]] = {}

    async def get(self, key: Any) -> Optional[Prediction]:
        entry = self.entries.get(key)
        if entry is None:
            return None
        if entry[0] < time.monotonic():
            del self.entries[key]
            return None
        return entry[1]

    async def set(self, key: Any, value: Prediction) -> None:
        self.entries.pop(key, None)
        self.entries[key] = (time.monotonic() + self.ttl, value)
        # One TTL for all: insertion order is expiry order, so the first entries go first.
        while len(self.entries) > self.max_entries:
            del self.entries[next(iter(self.entries))]

    async def close(self) -> None:
        self.entries.clear()

    def describe(self) -> Dict[str, Any]:
        return {"backend": "memory", "entries": len(self.entries)}


class RedisCache:
    """redis.asyncio, SET with EX; any Redis error or timeout is a miss (fail-open)."""

    def __init__(self, url: str, ttl: float) -> None:
        import redis.asyncio as redis

        self.errors = (redis.RedisError, OSError, TimeoutError)
        self.client = redis.Redis.from_url(
            url, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S * 10
        )
        self.ttl = max(1, int(ttl))

    @staticmethod
    def _key(key: tuple) -> str:
        model, version, row = key
        digest = hashlib.blake2b(repr(row).encode(), digest_size=16).hexdigest()
        return f"predict:{model}:{version}:{digest}"

    async def get(self, key: tuple) -> Optional[Prediction]:
        try:
            raw = await self.client.get(self._key(key))
        except self.errors:
            return None
        return Prediction.model_validate_json(raw) if raw is not None else None

    async def set(self, key: tuple, value: Prediction) -> None:
        try:
            await self.client.set(self._key(key), value.model_dump_json(), ex=self.ttl)
        except self.errors:
            pass

    async def close(self) -> None:
        await self.client.aclose()

    def describe(self) -> Dict[str, Any]:
        return {"backend": "redis"}


# --- the app ------------------------------------------------------------------------------------

models: Dict[str, OnnxModel] = {}
cache: Union[MemoryCache, RedisCache]
started = time.monotonic()


@asynccontextmanager
async def lifespan(_: FastAPI):
    global cache
    models.update(load_models())
    cache = RedisCache(REDIS_URL, CACHE_TTL_SECONDS) if REDIS_URL else MemoryCache(CACHE_TTL_SECONDS, CACHE_MAX_ENTRIES)
    ready_dir = os.environ.get("PEER_READY_DIR")
    if ready_dir:  # peers.ts waits until every worker has loaded its models
        Path(ready_dir, str(os.getpid())).touch()
    yield
    await cache.close()


app = FastAPI(title="analytics-api (FastAPI baseline peer)", lifespan=lifespan)


def get_model(model_id: str, body_model_id: Optional[str]) -> OnnxModel:
    if body_model_id is not None and body_model_id != model_id:
        raise HTTPException(400, detail=f'model_id in the body is "{body_model_id}" but the path names "{model_id}"')
    model = models.get(model_id)
    if model is None:
        raise HTTPException(404, detail=f"no model {model_id}")
    return model


async def run_model(model: OnnxModel, rows: List[List[float]]) -> List[Prediction]:
    if INFERENCE == "threadpool":
        return await run_in_threadpool(model.predict, rows)
    return model.predict(rows)


@app.get("/health")
async def health() -> Dict[str, Any]:
    return {
        "status": "ok",
        "pid": os.getpid(),
        "uptime_seconds": round(time.monotonic() - started, 3),
        "inference": INFERENCE,
        "models": {name: {"version": m.version, "loaded": True} for name, m in models.items()},
        "cache": cache.describe(),
    }


@app.post("/api/v1/predict/{model_id}")
async def predict(model_id: str, data: PredictionRequest, response: Response) -> PredictionResponse:
    model = get_model(model_id, data.model_id)
    row = model.row(data.features)
    key = (model.name, model.version, tuple(row))
    result = await cache.get(key)
    if result is None:
        response.headers["x-cache"] = "miss"
        result = (await run_model(model, [row]))[0]
        await cache.set(key, result)
    else:
        response.headers["x-cache"] = "hit"
    return PredictionResponse(
        **result.__dict__,
        timestamp=datetime.now(timezone.utc),
        model_version=model.version,
        model_id=model.name,
        prediction_id=str(uuid.uuid4()),
    )


@app.post("/api/v1/predict/{model_id}/batch")
async def predict_batch(model_id: str, data: BatchPredictionRequest) -> BatchPredictionResponse:
    model = get_model(model_id, data.model_id)
    rows = [model.row(features) for features in data.instances]
    results = await run_model(model, rows)
    return BatchPredictionResponse(
        predictions=results,
        timestamp=datetime.now(timezone.utc),
        model_version=model.version,
        model_id=model.name,
        prediction_ids=[str(uuid.uuid4()) for _ in results],
    )
