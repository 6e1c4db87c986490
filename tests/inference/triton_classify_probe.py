"""tritonclient's gRPC client asking a classifier for its probabilities, its label and its top classes (Triton's
classification extension), in a process of its own (see ``triton_grpc_probe``). Prints what it saw as JSON.

Usage: ``python -m tests.inference.triton_classify_probe HOST:PORT MODEL ROWS_JSON``."""

from __future__ import annotations

import json
import sys

import numpy as np
import tritonclient.grpc as grpcclient


def main(url: str, model: str, rows: str) -> None:
    x = np.asarray(json.loads(rows), np.float32)
    client = grpcclient.InferenceServerClient(url=url)
    try:
        meta = client.get_model_metadata(model)
        tensor = grpcclient.InferInput("features", list(x.shape), "FP32")
        tensor.set_data_from_numpy(x)
        plain = client.infer(model, [tensor])
        top = client.infer(model, [tensor], outputs=[grpcclient.InferRequestedOutput("probabilities", class_count=2)])
        print(json.dumps({
            "outputs": [{"name": t.name, "datatype": t.datatype, "shape": list(t.shape)} for t in meta.outputs],
            "probabilities": plain.as_numpy("probabilities").tolist(),
            "label": [v.decode() for v in plain.as_numpy("label").reshape(-1)],
            "top": [[v.decode() for v in row] for row in top.as_numpy("probabilities")]}))
    finally:
        client.close()


if __name__ == "__main__":
    main(*sys.argv[1:4])
