#!/usr/bin/env python3
"""Replays the hostile models of a manifest.json against a running service, over HTTP only, and
says for each whether the service answered what the manifest expects.

Usage:
    check_manifest.py [BASE_URL] [--models DIR] [--only REGEX] [--include-risky] [--json FILE]

BASE_URL (loopback only) defaults to $BASE_URL, else http://127.0.0.1:18080; DIR to
<repo>/.cache/hostile-models (written by generate.sh). API_TOKEN, when set, is sent as a bearer
token. Standard library only: any Python >= 3.11 runs it.

Each upload variant is POSTed as application/octet-stream to /api/v1/models with
name=<model_name>[-u<n>] and a version unique to the run, then each expected prediction is sent
to /api/v1/predict/<name>@<version>[/batch]. After every model, GET /health must still answer:
a service that stops answering ends the run. Models whose manifest entry has
risk_to_unhardened_service (they can exhaust an unhardened service's memory or block it for
minutes) are skipped unless --include-risky. Use a throwaway service (its own MODELS_DIR): the
accepted uploads stay.

Exit status: 0 when every answer matched, 1 when some did not, 2 on a usage or setup error.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LOOPBACK = re.compile(r"^https?://(127\.\d{1,3}\.\d{1,3}\.\d{1,3}|localhost|\[::1\])(:\d{1,5})?(/.*)?$")
SLOW_SECONDS = 5.0


def request(method: str, url: str, body: bytes | None, content_type: str | None, timeout: float):
    headers = {"accept": "application/json, application/problem+json"}
    if content_type:
        headers["content-type"] = content_type
    token = os.environ.get("API_TOKEN")
    if token:
        headers["authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=body, method=method, headers=headers)
    t0 = time.monotonic()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as e:
        return None, f"no answer: {e}", time.monotonic() - t0
    elapsed = time.monotonic() - t0
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        parsed = raw[:300].decode("utf-8", "replace")
    return status, parsed, elapsed


class HealthProbe:
    """Polls GET /health while a request is in flight: the slowest answer tells how long the
    service's event loop was blocked by that request."""

    def __init__(self, base: str):
        self.base, self.worst, self._stop = base, 0.0, threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            _, _, secs = request("GET", f"{self.base}/health", None, None, 120)
            self.worst = max(self.worst, secs)
            self._stop.wait(0.25)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join(timeout=130)


def timed(base: str, method: str, url: str, body, content_type, timeout):
    with HealthProbe(base) as probe:
        status, parsed, secs = request(method, url, body, content_type, timeout)
    return status, parsed, secs, probe.worst


def short(v, n=300) -> str:
    s = v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)
    return s if len(s) <= n else s[: n - 3] + "..."


def close(got, want, tol) -> bool:
    if isinstance(want, list):
        return isinstance(got, list) and len(got) == len(want) and all(close(g, w, tol) for g, w in zip(got, want))
    return isinstance(got, (int, float)) and not isinstance(got, bool) and math.isfinite(got) and abs(got - want) <= tol * max(1.0, abs(want))


def check_status(status, body, expect_status, expect_code) -> str | None:
    """None when the answer is what was expected, else why not."""
    if status is None:
        return f"no answer ({body})"
    if status not in expect_status:
        return f"answered {status} {short(body, 200)}; expected {expect_status}"
    if status >= 400 and expect_code:
        code = body.get("code") if isinstance(body, dict) else None
        if code not in expect_code:
            return f"answered {status} with code {code!r}; expected one of {expect_code} ({short(body, 200)})"
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("base", nargs="?", default=os.environ.get("BASE_URL", "http://127.0.0.1:18080"))
    ap.add_argument("--models", default=str(ROOT / ".cache" / "hostile-models"), help="folder with manifest.json")
    ap.add_argument("--only", help="only models whose file name matches this regular expression")
    ap.add_argument("--include-risky", action="store_true", help="also send the models that can take an unhardened service down")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds per request (default 60)")
    ap.add_argument("--json", help="also write the results to this file")
    args = ap.parse_args()

    base = args.base.rstrip("/")
    if not LOOPBACK.match(base):
        print(f"check_manifest.py: {base} is not a loopback address", file=sys.stderr)
        return 2
    manifest_path = Path(args.models) / "manifest.json"
    if not manifest_path.exists():
        print(f"check_manifest.py: no {manifest_path}; run test/hostile/generate.sh first", file=sys.stderr)
        return 2
    manifest = json.loads(manifest_path.read_text())
    status, body, _ = request("GET", f"{base}/health", None, None, 10)
    if status != 200:
        print(f"check_manifest.py: GET {base}/health answered {status}: {short(body)}", file=sys.stderr)
        return 2

    run = time.strftime("1.0.0-h%Y%m%d%H%M%S", time.gmtime())  # a semantic version unique to the run
    only = re.compile(args.only) if args.only else None
    results = []
    failed = 0
    for m in manifest["models"]:
        if only and not only.search(m["file"]):
            continue
        if m.get("risk_to_unhardened_service") and not args.include_risky:
            results.append({"file": m["file"], "skipped": m["risk_to_unhardened_service"]})
            print(f"SKIP {m['file']}: risky ({m['risk_to_unhardened_service'][:90]}...)")
            continue
        data = (Path(args.models) / m["file"]).read_bytes()
        for i, up in enumerate(m["uploads"]):
            name = m["model_name"] if i == 0 else f"{m['model_name'][:59]}-u{i}"
            query = {"name": name, "version": run}
            if "features" in up["query"]:
                query["features"] = json.dumps(up["query"]["features"])
            url = f"{base}/api/v1/models?{urllib.parse.urlencode(query)}"
            status, body, secs, blocked = timed(base, "POST", url, data, "application/octet-stream", args.timeout)
            problem = check_status(status, body, up["expect_status"], up["expect_code"])
            entry = {"file": m["file"], "upload": i, "features": up["query"].get("features"), "status": status,
                     "code": body.get("code") if isinstance(body, dict) else None, "seconds": round(secs, 3),
                     "health_worst_seconds": round(blocked, 3),
                     "detail": short(body.get("detail") if isinstance(body, dict) and "detail" in body else body, 300)}
            verdict = "ok" if problem is None else "FAIL"
            slow = secs > SLOW_SECONDS
            print(f"{'FAIL' if problem else 'ok  '} {m['file']} upload{i}{' (features given)' if 'features' in up['query'] else ''}: "
                  f"{status} {entry['code'] or ''} in {secs:.2f}s{' SLOW' if slow else ''}"
                  f"{f' (/health took up to {blocked:.1f}s meanwhile)' if blocked > 1 else ''}"
                  + (f" -- {problem}" if problem else ""))
            if problem:
                failed += 1
                entry["problem"] = problem
            entry["verdict"] = verdict
            results.append(entry)
            if status == 201 and i == 0:
                features = body.get("features") if isinstance(body, dict) else None
                for p in m["predicts"]:
                    if not features:
                        break
                    ref = urllib.parse.quote(f"{name}@{run}", safe="@")
                    if p["endpoint"] == "batch":
                        payload = {"instances": [{f: v for f in features} for v in p["instances_fill"]]}
                        purl = f"{base}/api/v1/predict/{ref}/batch"
                    else:
                        payload = {"features": {f: p["fill"] for f in features}}
                        purl = f"{base}/api/v1/predict/{ref}"
                    pst, pbody, psecs, pblocked = timed(base, "POST", purl, json.dumps(payload).encode(), "application/json",
                                                        args.timeout)
                    pproblem = check_status(pst, pbody, p["expect_status"], p.get("expect_code", []))
                    if pproblem is None and "expect_prediction" in p and isinstance(pbody, dict):
                        got = ([q.get("prediction") for q in pbody.get("predictions", [])] if p["endpoint"] == "batch"
                               else pbody.get("prediction"))
                        if not close(got, p["expect_prediction"], p["tolerance"]):
                            pproblem = f"prediction {short(got, 120)}; expected {p['expect_prediction']}"
                    what = f"batch {p['instances_fill']}" if p["endpoint"] == "batch" else f"fill {p['fill']}"
                    print(f"{'FAIL' if pproblem else 'ok  '}   predict {what}: {pst} in {psecs:.2f}s"
                          f"{' SLOW' if psecs > SLOW_SECONDS else ''}"
                          f"{f' (/health took up to {pblocked:.1f}s meanwhile)' if pblocked > 1 else ''} {short(pbody, 160)}"
                          + (f" -- {pproblem}" if pproblem else ""))
                    results.append({"file": m["file"], "predict": what, "status": pst, "seconds": round(psecs, 3),
                                    "health_worst_seconds": round(pblocked, 3),
                                    "body": short(pbody, 400), "verdict": "ok" if pproblem is None else "FAIL",
                                    **({"problem": pproblem} if pproblem else {})})
                    if pproblem:
                        failed += 1
        hst, hbody, hsecs = request("GET", f"{base}/health", None, None, 30)
        if hst != 200:
            print(f"STOP the service stopped answering after {m['file']}: /health → {hst} {short(hbody)}")
            results.append({"file": m["file"], "health": hst, "verdict": "FAIL", "problem": "service down after this model"})
            failed += 1
            break
        if hsecs > SLOW_SECONDS:
            print(f"SLOW /health took {hsecs:.1f}s after {m['file']}")
    checked = sum(1 for r in results if "verdict" in r)
    print(f"\n{checked - failed} passed, {failed} failed")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
