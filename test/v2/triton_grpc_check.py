"""Drives the service's gRPC port with tritonclient's gRPC client, unmodified, as a Triton user would.

Usage: python triton_grpc_check.py HOST:PORT MODELS_DIR MODEL [MODEL ...]
Prints one JSON object: server and model metadata, per model the outputs for the reference
samples (tritonclient's raw tensors, and typed contents through the client's own generated stub),
the repository index, load/unload and the errors' status codes, for the Node test to check.
"""
import json
import sys

import grpc
import numpy as np
import tritonclient.grpc as grpcclient
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.descriptor_pb2 import FieldDescriptorProto
from tritonclient.grpc import model_config_pb2, service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

url, models_dir, names = sys.argv[1], sys.argv[2], sys.argv[3:]
client = grpcclient.InferenceServerClient(url=url)
TIMEOUT = 30.0


def outcome(fn):
    """The call's answer, or the gRPC status and message it failed with."""
    try:
        return {"ok": fn()}
    except InferenceServerException as e:
        return {"status": e.status(), "message": e.message()}


def rows_of(ref):
    return [[s["features"][f] for f in ref["features"]] for s in ref["samples"]]


def inputs_for(ref, meta, rows):
    np_type = np.float64 if ref["input"]["dtype"] == "float64" else np.float32
    if ref["input"]["mode"] == "tensor":
        data = np.array(rows, dtype=np_type)
        inp = grpcclient.InferInput(meta["inputs"][0]["name"], list(data.shape), meta["inputs"][0]["datatype"])
        inp.set_data_from_numpy(data)
        return [inp]
    inputs = []
    for i, feature in enumerate(ref["features"]):
        column = np.array([[r[i]] for r in rows], dtype=np_type)
        inp = grpcclient.InferInput(feature, list(column.shape), "FP32" if np_type == np.float32 else "FP64")
        inp.set_data_from_numpy(column)
        inputs.append(inp)
    return inputs


def as_lists(result, meta, n):
    out = {}
    for o in meta["outputs"]:
        arr = result.as_numpy(o["name"])
        if arr.dtype == object:
            out[o["name"]] = [x.decode() if isinstance(x, bytes) else x for x in arr.reshape(-1).tolist()]
        else:
            out[o["name"]] = arr.reshape(n, -1).tolist()
    return out


def typed_infer(name, ref, meta, rows):
    """ModelInfer with typed contents (fp32_contents, ...), as KServe's clients can send, through tritonclient's own stub."""
    stub = service_pb2_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(url))
    request = service_pb2.ModelInferRequest(model_name=name, id=f"{name}-typed")
    field = "fp64_contents" if ref["input"]["dtype"] == "float64" else "fp32_contents"
    if ref["input"]["mode"] == "tensor":
        tensor = request.inputs.add(name=meta["inputs"][0]["name"], datatype=meta["inputs"][0]["datatype"], shape=[len(rows), len(rows[0])])
        getattr(tensor.contents, field).extend([v for r in rows for v in r])
    else:
        for i, feature in enumerate(ref["features"]):
            tensor = request.inputs.add(name=feature, datatype="FP64" if field == "fp64_contents" else "FP32", shape=[len(rows), 1])
            getattr(tensor.contents, field).extend([r[i] for r in rows])
    response = stub.ModelInfer(request, timeout=TIMEOUT)
    out = {}
    for o in response.outputs:
        values = {
            "INT64": o.contents.int64_contents,
            "FP32": o.contents.fp32_contents,
            "FP64": o.contents.fp64_contents,
            "BYTES": [b.decode() for b in o.contents.bytes_contents],
        }[o.datatype]
        out[o.name] = {"shape": list(o.shape), "values": list(values)}
    return {"id": response.id, "raw": len(response.raw_output_contents), "outputs": out}


report = {
    "live": client.is_server_live(),
    "ready": client.is_server_ready(),
    "server": client.get_server_metadata(as_json=True),
    "models": {},
}

for name in names:
    ref = json.load(open(f"{models_dir}/{name}.json"))
    meta = client.get_model_metadata(name, as_json=True)
    rows = rows_of(ref)
    entry = {
        "metadata": meta,
        "ready": client.is_model_ready(name),
        "config": client.get_model_config(name, as_json=True)["config"],
    }
    outputs = [grpcclient.InferRequestedOutput(o["name"]) for o in meta["outputs"]]
    result = client.infer(name, inputs_for(ref, meta, rows), outputs=outputs, request_id=f"{name}-raw", client_timeout=TIMEOUT)
    entry["raw"] = {"id": result.get_response().id, "outputs": as_lists(result, meta, len(rows))}
    # No outputs named: every output comes back.
    default = client.infer(name, inputs_for(ref, meta, rows[:2]), client_timeout=TIMEOUT).get_response()
    entry["default_outputs"] = sorted(o.name for o in default.outputs)
    entry["typed"] = typed_infer(name, ref, meta, rows)
    entry["statistics"] = client.get_inference_statistics(name, as_json=True)
    report["models"][name] = entry

first = names[0]
ref = json.load(open(f"{models_dir}/{first}.json"))
meta = report["models"][first]["metadata"]
rows = rows_of(ref)
infer_first = lambda: client.infer(first, inputs_for(ref, meta, rows[:1]), client_timeout=TIMEOUT).get_response().model_version

report["index"] = client.get_model_repository_index(as_json=True)
report["unload"] = outcome(lambda: client.unload_model(first))
report["after_unload"] = {
    "infer": outcome(infer_first),
    "model_ready": client.is_model_ready(first),
    "server_ready": client.is_server_ready(),
    "index": client.get_model_repository_index(as_json=True),
}
report["load"] = outcome(lambda: client.load_model(first))
report["after_load"] = {
    "infer": outcome(infer_first),
    "model_ready": client.is_model_ready(first),
    "server_ready": client.is_server_ready(),
}


def bad_shape():
    bad = grpcclient.InferInput(meta["inputs"][0]["name"], [1, 3], meta["inputs"][0]["datatype"])
    bad.set_data_from_numpy(np.zeros((1, 3), dtype=np.float32))
    return client.infer(first, [bad], client_timeout=TIMEOUT)


def bad_datatype():
    bad = grpcclient.InferInput(meta["inputs"][0]["name"], [1, 4], "FP64")
    bad.set_data_from_numpy(np.zeros((1, 4), dtype=np.float64))
    return client.infer(first, [bad], client_timeout=TIMEOUT)


def unknown_model_infer():
    inp = grpcclient.InferInput("input", [1, 4], "FP32")
    inp.set_data_from_numpy(np.zeros((1, 4), dtype=np.float32))
    return client.infer("no-such-model", [inp], client_timeout=TIMEOUT)


report["errors"] = {
    "unknown_model_metadata": outcome(lambda: client.get_model_metadata("no-such-model")),
    "unknown_model_infer": outcome(unknown_model_infer),
    "unknown_version_metadata": outcome(lambda: client.get_model_metadata(first, model_version="999")),
    "unknown_model_load": outcome(lambda: client.load_model("no-such-model")),
    "bad_shape": outcome(bad_shape),
    "bad_datatype": outcome(bad_datatype),
}


def fields(descriptor):
    """A message's fields as the client's compiled proto has them: name → [number, type, repeated]."""
    return {f.name: [f.number, FieldDescriptorProto.Type.Name(f.type), f.label == FieldDescriptor.LABEL_REPEATED] for f in descriptor.fields}


def messages(file_descriptor):
    out = {}

    def walk(d):
        out[d.full_name] = fields(d)
        for n in d.nested_types:
            walk(n)

    for d in file_descriptor.message_types_by_name.values():
        walk(d)
    return out


report["client_messages"] = {**messages(service_pb2.DESCRIPTOR), **messages(model_config_pb2.DESCRIPTOR)}
print(json.dumps(report))
