"""Inputs found by hand to give a 500 (issue 12): each now gets a clear 4xx naming what is wrong."""

from __future__ import annotations

from typing import Any

import pytest

from tests.inference.conftest import window_request

pytestmark = pytest.mark.slow  # serves the reference models


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"a": value}
    return value


@pytest.mark.parametrize(("method", "path", "body", "status", "needle"), [
    ("GET", "/v2/models/_x", None, 404, "_x"),
    ("GET", "/v2/models/_x/versions/1/ready", None, 404, "_x"),
    ("POST", "/v2/models/lstm/infer",
     {"inputs": [{"name": "window", "shape": [0, 2**62, 2**62], "datatype": "FP32", "data": []}]}, 400, "shape"),
    ("POST", "/v2/models/lstm/infer",
     {"inputs": [{"name": "window", "shape": [1] * 33, "datatype": "FP32", "data": [1.0]}]}, 422, "shape"),
    ("POST", "/v2/models/lstm/infer",
     {"inputs": [{"name": "window", "shape": [1, 50], "datatype": "FP32", "data": [1e39] + [1.0] * 49}]}, 400,
     "FP32"),
    ("POST", "/v2/models/lstm/infer", window_request(1, parameters={"deep": nested(200)}), 422, "parameters.deep"),
])
def test_each_gets_a_clear_4xx(client, method: str, path: str, body: Any, status: int, needle: str) -> None:  # type: ignore[no-untyped-def]
    response = client.request(method, path, json=body)
    assert response.status_code == status, response.text
    assert needle in response.json()["error"], response.text
    assert client.get("/v2/health/live").status_code == 200
