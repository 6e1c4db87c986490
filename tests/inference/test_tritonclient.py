"""The most common OIP clients, unchanged: Triton's Python clients over HTTP (tensors in binary by default, the
binary tensor extension) and gRPC, against a real server on 127.0.0.1; their answers equal REST JSON's. The binary
extension's framing errors are 400s naming what is wrong."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np
import pytest

from tests.inference.conftest import Service, start_service, window_request

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def served(reference_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    root = tmp_path_factory.mktemp("store")
    shutil.copytree(reference_store, root, dirs_exist_ok=True)
    service = start_service(root, grpc_port=0, host="127.0.0.1")
    yield service
    service.running.stop()


def _windows(rows: int) -> np.ndarray:
    return np.asarray(window_request(rows)["inputs"][0]["data"], np.float32).reshape(rows, 50)


def _rest(service: Service, model: str, body: dict[str, Any]) -> dict[str, Any]:
    with service.client() as client:
        answer = client.post(f"/v2/models/{model}/infer", json=body)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def _json_prediction(service: Service, x: np.ndarray) -> np.ndarray:
    body = {"inputs": [{"name": "window", "shape": list(x.shape), "datatype": "FP32", "data": x.reshape(-1).tolist()}]}
    return np.asarray(_rest(service, "lstm", body)["outputs"][0]["data"], np.float32).reshape(-1, 1)


def _http(service: Service) -> Any:
    import tritonclient.http as httpclient

    return httpclient.InferenceServerClient(url=service.url.removeprefix("http://"))


def test_health_metadata_and_infer_through_tritonclient_http(served: Service) -> None:
    client = _http(served)
    try:
        assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("lstm")
        assert client.get_server_metadata()["name"] == "mitiga"
        assert client.get_model_metadata("lstm")["inputs"] == [{"name": "window", "datatype": "FP32",
                                                                "shape": [-1, 50]}]
    finally:
        client.close()


def test_health_metadata_and_infer_through_tritonclient_grpc(served: Service) -> None:
    x = _windows(4)
    done = subprocess.run([sys.executable, "-m", "tests.inference.triton_grpc_probe",
                           f"127.0.0.1:{served.app.state.grpc.port}", json.dumps(x.tolist())],
                          capture_output=True, text=True, timeout=120, check=False, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    seen = json.loads(done.stdout.splitlines()[-1])
    assert seen["live"] and seen["ready"] and seen["model_ready"] and seen["server"] == "mitiga"
    assert seen["inputs"] == [{"name": "window", "datatype": "FP32", "shape": [-1, 50]}]
    assert seen["id"] == "triton-grpc"
    np.testing.assert_array_equal(np.asarray(seen["prediction"], np.float32).reshape(-1, 1),
                                  _json_prediction(served, x))


@pytest.mark.parametrize(("binary_in", "binary_out"), [
    (None, None),  # tritonclient's defaults: binary inputs, every output asked for in binary
    (False, False),  # JSON both ways
    (True, False),  # binary in, JSON out
    (False, True),  # JSON in, binary out for the named output
])
def test_infer_through_tritonclient_http_equals_rest_json(served: Service, binary_in: bool | None,
                                                          binary_out: bool | None) -> None:
    import tritonclient.http as httpclient

    x = _windows(4)
    expected = _json_prediction(served, x)
    tensor = httpclient.InferInput("window", list(x.shape), "FP32")
    if binary_in is None:
        tensor.set_data_from_numpy(x)
    else:
        tensor.set_data_from_numpy(x, binary_data=binary_in)
    outputs = None if binary_out is None else [httpclient.InferRequestedOutput("prediction", binary_data=binary_out)]
    client = _http(served)
    try:
        result = client.infer("lstm", [tensor], outputs=outputs, request_id=f"triton-{binary_in}-{binary_out}")
    finally:
        client.close()
    got = result.as_numpy("prediction")
    assert got is not None and got.dtype == np.float32
    np.testing.assert_array_equal(got.reshape(-1, 1), expected)
    answer = result.get_response()
    assert answer["id"] == f"triton-{binary_in}-{binary_out}" and answer["model_version"] == "1"
    sent_binary = binary_out is not False  # the default asks for binary outputs
    assert ("binary_data_size" in (answer["outputs"][0].get("parameters") or {})) == sent_binary


def test_mixed_json_and_binary_tensors_in_one_request(served: Service) -> None:
    """The regressor takes one input per feature: some in JSON, some in binary, in one request."""
    import tritonclient.http as httpclient

    with served.client() as client:
        features = client.get("/v2/models/air").json()["parameters"]["features"]
    rows = np.random.default_rng(0).uniform(1, 5, size=(3, len(features))).astype(np.float32)
    [output] = _rest(served, "air", {"inputs": [{"name": "features", "shape": [3, len(features)], "datatype": "FP32",
                                                 "data": rows.reshape(-1).tolist()}]})["outputs"]
    tensors = []
    for i, name in enumerate(features):
        tensor = httpclient.InferInput(name, [3, 1], "FP32")
        tensor.set_data_from_numpy(rows[:, [i]], binary_data=i % 2 == 0)
        tensors.append(tensor)
    client = _http(served)
    try:
        result = client.infer("air", tensors)
    finally:
        client.close()
    np.testing.assert_array_equal(result.as_numpy(output["name"]).reshape(-1), np.asarray(output["data"], np.float32))


def _framed(header: dict[str, Any], binary: bytes, length: int | None = None) -> tuple[bytes, dict[str, str]]:
    text = json.dumps(header).encode()
    return text + binary, {"Inference-Header-Content-Length": str(len(text) if length is None else length)}


def _binary_window(rows: int, size: int | None = None, **extra: Any) -> dict[str, Any]:
    return {"inputs": [{"name": "window", "shape": [rows, 50], "datatype": "FP32",
                        "parameters": {"binary_data_size": rows * 200 if size is None else size}, **extra}]}


@pytest.mark.parametrize(("body", "needle"), [
    (_framed(_binary_window(2), _windows(2).tobytes(), length=10_000), "Inference-Header-Content-Length"),
    (_framed(_binary_window(2), _windows(2).tobytes(), length=0), "Inference-Header-Content-Length"),
    (_framed(_binary_window(2, size=800), _windows(2).tobytes()), "input 'window': binary_data_size is 800"),
    (_framed(_binary_window(2, size=396), _windows(2).tobytes()[:396]), "input 'window'"),  # 99 values for 100
    (_framed(_binary_window(2), _windows(2).tobytes() + b"\0\0\0"), "3 bytes after the last binary tensor"),
    (_framed(_binary_window(2, data=[1.0]), _windows(2).tobytes()), "not both"),
    (_framed(_binary_window(2, size=-4), b""), "binary_data_size must be a whole number"),
    (_framed({"inputs": [{"name": "window", "shape": [1, 2], "datatype": "BYTES",
                          "parameters": {"binary_data_size": 9}}]}, b"\x05\0\0\0abcde"), "BYTES element 1"),
    (_framed({"inputs": [{"name": "window", "shape": [1, 1], "datatype": "BYTES",
                          "parameters": {"binary_data_size": 9}}]}, b"\x05\0\0\0abcde"), "'BYTES' is not supported"),
])
def test_bad_binary_framing_is_a_400_naming_the_tensor(served: Service, body: tuple[bytes, dict[str, str]],
                                                       needle: str) -> None:
    content, headers = body
    with served.client() as client:
        answer = client.post("/v2/models/lstm/infer", content=content, headers=headers)
    assert answer.status_code == 400, answer.text
    assert needle in answer.json()["error"]


def test_a_json_body_without_a_content_type_is_read(served: Service) -> None:
    body = json.dumps(window_request(1)).encode()
    answer = httpx.post(f"{served.url}/v2/models/lstm/infer", content=body, headers={"Content-Type": ""})
    assert answer.status_code == 200, answer.text
