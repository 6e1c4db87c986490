"""tritonclient's gRPC client against a server, in a process of its own: its protobuf descriptors (package
``inference``) collide with the server's OIP stubs in one process. Prints what it saw as JSON.

Usage: ``python -m tests.inference.triton_grpc_probe HOST:PORT ROWS_JSON``."""

from __future__ import annotations

import json
import sys

import numpy as np
import tritonclient.grpc as grpcclient


def main(url: str, rows: str) -> None:
    x = np.asarray(json.loads(rows), np.float32)
    client = grpcclient.InferenceServerClient(url=url)
    try:
        model = client.get_model_metadata("lstm")
        tensor = grpcclient.InferInput("window", list(x.shape), "FP32")
        tensor.set_data_from_numpy(x)
        result = client.infer("lstm", [tensor], request_id="triton-grpc")
        print(json.dumps({
            "live": client.is_server_live(), "ready": client.is_server_ready(),
            "model_ready": client.is_model_ready("lstm"), "server": client.get_server_metadata().name,
            "inputs": [{"name": t.name, "datatype": t.datatype, "shape": list(t.shape)} for t in model.inputs],
            "id": result.get_response().id, "prediction": result.as_numpy("prediction").reshape(-1).tolist()}))
    finally:
        client.close()


if __name__ == "__main__":
    main(*sys.argv[1:3])
