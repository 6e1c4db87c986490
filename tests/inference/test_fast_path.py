"""The infer route's requests are answered in front of the framework (mitiga_inference.fastpath), exactly as the
FastAPI route answers them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest

from tests.inference.conftest import window_request

pytestmark = pytest.mark.slow


@contextmanager
def framework_calls(app: Any) -> Iterator[list[str]]:
    """The paths of the requests that went through the FastAPI app's middleware stack meanwhile."""
    seen: list[str] = []
    inner = app.middleware_stack
    assert inner is not None, "the app has answered a request already"

    async def counting(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            seen.append(scope["path"])
        await inner(scope, receive, send)

    app.middleware_stack = counting
    try:
        yield seen
    finally:
        app.middleware_stack = inner


@contextmanager
def route_only(app: Any) -> Iterator[None]:
    fast, app.fast = app.fast, None
    try:
        yield
    finally:
        app.fast = fast


def _binary_body() -> tuple[bytes, dict[str, str]]:
    data = np.linspace(20, 30, 100, dtype="<f4").tobytes()
    header = json.dumps({"inputs": [{"name": "window", "shape": [2, 50], "datatype": "FP32",
                                     "parameters": {"binary_data_size": len(data)}}],
                         "parameters": {"binary_data_output": True}}).encode()
    return header + data, {"Inference-Header-Content-Length": str(len(header))}


def test_infer_skips_the_framework_unless_draining(service, client) -> None:
    with framework_calls(service.app) as seen:
        assert client.post("/v2/models/lstm/infer", json=window_request(1)).status_code == 200
        assert client.post("/v2/models/lstm/versions/1/infer", json=window_request(1)).status_code == 200
        assert client.get("/v2/health/live").status_code == 200
    assert seen == ["/v2/health/live"]
    drain = service.app.state.drain
    drain.start()
    try:
        with framework_calls(service.app) as seen:
            r = client.post("/v2/models/lstm/infer", json=window_request(1))
        assert r.status_code == 200 and r.headers["connection"] == "close"  # the route sends the client away
        assert seen == ["/v2/models/lstm/infer"]
    finally:
        drain.draining = False


CASES: dict[str, dict[str, Any]] = {
    "json": {"json": window_request(3)},
    "binary": dict(zip(("content", "headers"), _binary_body(), strict=True)),
    "bad json": {"content": b'{"inputs": [', "headers": {"Content-Type": "application/json"}},
    "missing field": {"json": {"inputs": [{"name": "window", "shape": [1, 50], "datatype": "FP32"}]}},
    "wrong width": {"json": window_request(1, window=7)},
    "bad binary length": {"content": b"{}", "headers": {"Inference-Header-Content-Length": "x"}},
    "too large": {"content": b"0" * (300 * 1024)},
    "unknown output": {"json": window_request(1, outputs=[{"name": "nope"}])},
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("path", ["/v2/models/lstm/infer", "/v2/models/nosuch/infer"])
def test_fast_path_answers_as_the_route(service, client, case: str, path: str) -> None:
    fast = client.post(path, **CASES[case])
    with route_only(service.app):
        routed = client.post(path, **CASES[case])
    assert fast.status_code == routed.status_code, fast.text
    assert fast.headers["content-type"] == routed.headers["content-type"]
    if fast.headers["content-type"] == "application/json":
        a, b = fast.json(), routed.json()
        a.pop("id", None), b.pop("id", None)  # a random id per request
        assert a == b
        assert fast.status_code == 200 or a["error"]  # an error names what is wrong
    else:
        assert fast.headers["inference-header-content-length"] == routed.headers["inference-header-content-length"]
        assert len(fast.content) == len(routed.content)
