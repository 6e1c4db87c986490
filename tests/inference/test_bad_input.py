"""Every bad request gets a 4xx whose message names the tensor or field, and the server keeps serving."""

from __future__ import annotations

import pytest

from tests.inference.conftest import window_request

pytestmark = pytest.mark.slow


def _bad(client, path: str, body: object, status: int, *needles: str) -> None:
    r = client.post(path, json=body) if not isinstance(body, bytes) else client.post(
        path, content=body, headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    message = r.json()["error"]
    for needle in needles:
        assert needle in message, message


def _one(name: str = "window", shape: list[int] | None = None, datatype: str = "FP32", data: list | None = None) -> dict:
    return {"inputs": [{"name": name, "shape": shape or [1, 50], "datatype": datatype,
                        "data": data if data is not None else [1.0] * 50}]}


@pytest.mark.parametrize(("body", "needles"), [
    (_one(shape=[1, 49], data=[1.0] * 49), ["'window'", "[-1, 50]"]),
    (_one(shape=[2, 50]), ["'window'", "needs 100 values, got 50"]),
    (_one(datatype="BYTES"), ["'window'", "BYTES"]),
    (_one(datatype="FP32", data=["a"] * 50), ["'window'", "numbers"]),
    (_one(datatype="INT32", data=[1.5] * 50), ["'window'", "whole numbers"]),
    (_one(shape=[-1, 50]), ["'window'", "between 1 and"]),
    (_one(name="x"), ["'window'", "['x']"]),
    ({"inputs": [{"name": "window", "shape": [1, 50], "datatype": "FP32", "data": [[1.0] * 50, [1.0]]}]}, ["'window'", "ragged"]),
])
def test_bad_tensors_are_400_naming_the_tensor(client, body: dict, needles: list[str]) -> None:
    _bad(client, "/v2/models/lstm/infer", body, 400, *needles)


def test_nan_and_infinity_are_rejected(client) -> None:
    raw = b'{"inputs": [{"name": "window", "shape": [1, 50], "datatype": "FP32", "data": [NaN' + b", 1.0" * 49 + b"]}]}"
    _bad(client, "/v2/models/lstm/infer", raw, 400, "'window'", "NaN")
    raw = b'{"inputs": [{"name": "window", "shape": [1, 50], "datatype": "FP32", "data": [1e999' + b", 1.0" * 49 + b"]}]}"
    _bad(client, "/v2/models/lstm/infer", raw, 400, "'window'", "infinity")


def test_missing_and_unknown_tabular_inputs(client) -> None:
    features = client.get("/v2/models/air").json()["parameters"]["features"]
    inputs = [{"name": f, "shape": [1], "datatype": "FP32", "data": [1.0]} for f in features[1:]]
    _bad(client, "/v2/models/air/infer", {"inputs": inputs}, 400, "missing inputs", features[0])
    inputs.append({"name": "bogus", "shape": [1], "datatype": "FP32", "data": [1.0]})
    _bad(client, "/v2/models/air/infer", {"inputs": inputs}, 400, "unknown inputs", "bogus")


def test_schema_errors_are_422_naming_the_field(client) -> None:
    _bad(client, "/v2/models/lstm/infer", {"id": "x"}, 422, "inputs")
    _bad(client, "/v2/models/lstm/infer", {"inputs": [{"name": "window", "shape": [1, 50], "data": []}]}, 422,
         "inputs.0.datatype")
    _bad(client, "/v2/models/lstm/infer", b"{not json", 422, "JSON")
    _bad(client, "/v2/models/lstm/feedback", {"request_id": "a", "ground_truth": []}, 422, "items.0.ground_truth")
    raw = b'{"request_id": "a", "ground_truth": [NaN]}'
    _bad(client, "/v2/models/lstm/feedback", raw, 422, "items.0.ground_truth.0")


def test_unknown_model_or_version_is_404(client) -> None:
    _bad(client, "/v2/models/nope/infer", window_request(1), 404, "'nope'")
    _bad(client, "/v2/models/lstm/versions/9/infer", window_request(1), 404, "'9'")
    _bad(client, "/v2/models/lstm/infer", {**window_request(1), "outputs": [{"name": "zzz"}]}, 400, "zzz")


def test_bad_data_time_parameter(client) -> None:
    _bad(client, "/v2/models/lstm/infer", window_request(1, parameters={"data_time": "yesterday"}), 400,
         "parameters.data_time")


def test_too_large_body_is_413(client) -> None:
    big = window_request(2000)  # ~1 MB of JSON, over the 256 KiB limit of the test service
    r = client.post("/v2/models/lstm/infer", json=big)
    assert r.status_code == 413 and "limit" in r.json()["error"]

    def chunks():  # no Content-Length: counted while streaming
        yield b'{"inputs": [{"name": "window", "shape": [1, 50], "datatype": "FP32", "data": ['
        for _ in range(40_000):
            yield b"1.0, 1.0, 1.0, "
        yield b"1.0]}]}"

    r = client.post("/v2/models/lstm/infer", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_errors_are_counted_and_server_still_serves(client) -> None:
    client.post("/v2/models/lstm/infer", json=_one(shape=[1, 49], data=[1.0] * 49))
    client.post("/v2/models/nope/infer", json=window_request(1))
    text = client.get("/metrics").text
    assert 'mitiga_inference_errors_total{code="400",model="lstm",version="1"}' in text
    assert 'mitiga_inference_errors_total{code="404",model="_unknown",version=""}' in text
    assert client.post("/v2/models/lstm/infer", json=window_request(1)).status_code == 200
