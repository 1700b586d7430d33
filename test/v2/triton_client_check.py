"""Drives the service with tritonclient's HTTP client, unmodified, as a Triton user would.

Usage: python triton_client_check.py HOST:PORT MODELS_DIR MODEL [MODEL ...]
Prints one JSON object: per model and mode (json, binary) the outputs for the reference samples,
so the Node test compares them with onnxruntime's own answers.
"""
import json
import sys

import numpy as np
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

url, models_dir, names = sys.argv[1], sys.argv[2], sys.argv[3:]
client = httpclient.InferenceServerClient(url=url, network_timeout=30.0)
report = {"live": client.is_server_live(), "ready": client.is_server_ready(), "server": client.get_server_metadata(), "models": {}}

for name in names:
    ref = json.load(open(f"{models_dir}/{name}.json"))
    meta = client.get_model_metadata(name)
    config_inputs = meta["inputs"]
    rows = [[s["features"][f] for f in ref["features"]] for s in ref["samples"]]
    np_type = np.float64 if ref["input"]["dtype"] == "float64" else np.float32
    entry = {"metadata": meta, "model_ready": client.is_model_ready(name)}
    for mode in ("json", "binary"):
        binary = mode == "binary"
        inputs = []
        if ref["input"]["mode"] == "tensor":
            data = np.array(rows, dtype=np_type)
            inp = httpclient.InferInput(config_inputs[0]["name"], list(data.shape), config_inputs[0]["datatype"])
            inp.set_data_from_numpy(data, binary_data=binary)
            inputs.append(inp)
        else:
            for i, feature in enumerate(ref["features"]):
                column = np.array([[r[i]] for r in rows], dtype=np_type)
                inp = httpclient.InferInput(feature, list(column.shape), "FP32" if np_type == np.float32 else "FP64")
                inp.set_data_from_numpy(column, binary_data=binary)
                inputs.append(inp)
        outputs = [httpclient.InferRequestedOutput(o["name"], binary_data=binary) for o in meta["outputs"]]
        result = client.infer(name, inputs, outputs=outputs, request_id=f"{name}-{mode}")
        response = result.get_response()
        out = {}
        for o in meta["outputs"]:
            arr = result.as_numpy(o["name"])
            if arr.dtype == object:
                out[o["name"]] = [x.decode() if isinstance(x, bytes) else x for x in arr.reshape(-1).tolist()]
            else:
                out[o["name"]] = arr.reshape(len(rows), -1).tolist()
        entry[mode] = {"id": response.get("id"), "outputs": out}
    # The client's default: no outputs named, every output in binary.
    data = np.array(rows[:2], dtype=np_type)
    if ref["input"]["mode"] == "tensor":
        inp = httpclient.InferInput(config_inputs[0]["name"], list(data.shape), config_inputs[0]["datatype"])
        inp.set_data_from_numpy(data)
        entry["default_outputs"] = sorted(client.infer(name, [inp]).get_response()["outputs"][i]["name"] for i in range(len(meta["outputs"])))
    report["models"][name] = entry

# The model repository extension and the model configuration, as tritonclient calls them.
first = names[0]
repository = {"index": client.get_model_repository_index(), "config": client.get_model_config(first)}
client.unload_model(first)
repository["after_unload"] = {"model_ready": client.is_model_ready(first), "index": client.get_model_repository_index()}
client.load_model(first)
repository["after_load"] = {"model_ready": client.is_model_ready(first), "statistics": client.get_inference_statistics(first)}
report["repository"] = repository

# A shape mismatch is a clear client error.
try:
    bad = httpclient.InferInput("input", [1, 3], "FP32")
    bad.set_data_from_numpy(np.zeros((1, 3), dtype=np.float32))
    client.infer(names[0], [bad])
    report["bad_shape"] = "accepted"
except InferenceServerException as e:
    report["bad_shape"] = {"status": e.status(), "message": e.message()}

print(json.dumps(report))
