"""The OIP v2 REST endpoints against a real server on 127.0.0.1."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from mitiga_core.bundle import load_keras, read_manifest
from mitiga_core.events import Topic, decode_as
from mitiga_core.pb.mitiga.v1 import events_pb2 as pb
from tests.inference.conftest import Service, window_request

pytestmark = pytest.mark.slow


def keras_predict(service: Service, name: str, x: np.ndarray) -> np.ndarray:
    """What the stored model predicts for ``x`` when called directly, scalers applied by hand."""
    folder = service.store.path(name, service.store.champion(name) or "1")
    manifest = read_manifest(folder)
    model = load_keras(folder / "model.keras")
    scaled = manifest.input_scaler.transform(x[..., None] if manifest.task == "forecast" else x)
    return manifest.output_scaler.inverse(np.asarray(model.predict(scaled, verbose=0)))


def test_health_and_server_metadata(client) -> None:
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"ready": True}
    meta = client.get("/v2").json()
    assert meta["name"] == "mitiga" and "model_repository" in meta["extensions"]


def test_model_metadata_describes_tensors(client) -> None:
    lstm = client.get("/v2/models/lstm").json()
    assert lstm["inputs"] == [{"name": "window", "datatype": "FP32", "shape": [-1, 50]}]
    assert lstm["outputs"][0]["name"] == "prediction"
    assert lstm["versions"] == ["1"]
    air = client.get("/v2/models/air/versions/1").json()
    assert air["inputs"][0]["shape"] == [-1, 8]
    assert air["parameters"]["features"][0] == "PT08.S1(CO)"
    assert client.get("/v2/models/lstm/ready").json() == {"name": "lstm", "ready": True}
    assert client.get("/v2/models/lstm/versions/1/ready").status_code == 200
    assert client.get("/v2/models/nope").status_code == 404


def test_forecast_matches_direct_keras_and_echoes_id(service: Service, client) -> None:
    body = window_request(3, id="req-42")
    r = client.post("/v2/models/lstm/infer", json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["id"] == "req-42" and out["model_name"] == "lstm" and out["model_version"] == "1"
    assert out["outputs"][0]["shape"] == [3, 1]
    x = np.asarray(body["inputs"][0]["data"], np.float32).reshape(3, 50)
    np.testing.assert_allclose(out["outputs"][0]["data"], keras_predict(service, "lstm", x).reshape(-1), rtol=1e-4)


def test_request_id_is_generated_when_absent(client) -> None:
    first = client.post("/v2/models/lstm/infer", json=window_request(1)).json()["id"]
    second = client.post("/v2/models/lstm/infer", json=window_request(1)).json()["id"]
    assert first and second and first != second


def test_forecast_accepts_rank3_window_and_version_path(client) -> None:
    body = window_request(2)
    flat = client.post("/v2/models/lstm/infer", json=body).json()["outputs"][0]["data"]
    body["inputs"][0]["shape"] = [2, 50, 1]
    r = client.post("/v2/models/lstm/versions/1/infer", json=body)
    assert r.status_code == 200
    np.testing.assert_allclose(r.json()["outputs"][0]["data"], flat, rtol=1e-6)


def test_tabular_one_tensor_or_one_per_feature(service: Service, client) -> None:
    features = client.get("/v2/models/air").json()["parameters"]["features"]
    rng = np.random.default_rng(0)
    x = rng.uniform(500, 1500, size=(4, len(features))).astype(np.float32)
    whole = client.post("/v2/models/air/infer", json={
        "inputs": [{"name": "features", "shape": [4, len(features)], "datatype": "FP64", "data": x.tolist()}]})
    assert whole.status_code == 200, whole.text
    split = client.post("/v2/models/air/infer", json={"inputs": [
        {"name": f, "shape": [4], "datatype": "FP32", "data": x[:, i].tolist()} for i, f in enumerate(features)]})
    assert split.status_code == 200, split.text
    a, b = whole.json()["outputs"][0], split.json()["outputs"][0]
    assert a["name"] == "CO(GT)"
    np.testing.assert_allclose(a["data"], b["data"], rtol=1e-6)
    np.testing.assert_allclose(a["data"], keras_predict(service, "air", x).reshape(-1), rtol=1e-4, atol=1e-5)


def test_feedback_single_and_many_is_published(service: Service, client) -> None:
    before = len(service.bus.messages(Topic.FEEDBACK))
    assert client.post("/v2/models/lstm/feedback", json={"request_id": "a", "ground_truth": [1.5]}).json() == {"accepted": 1}
    many = {"items": [{"request_id": "b", "ground_truth": [2.0]}, {"request_id": "c", "ground_truth": [3.0, 4.0]}]}
    r = client.post("/v2/models/lstm/feedback", json=many)
    assert r.status_code == 202 and r.json() == {"accepted": 2}
    events = [decode_as(e, pb.FeedbackEvent) for e in service.bus.messages(Topic.FEEDBACK)[before:]]
    assert [[i.request_id for i in e.items] for e in events] == [["a"], ["b", "c"]]
    assert list(events[1].items[1].ground_truth) == [3.0, 4.0]
    assert client.post("/v2/models/nope/feedback", json={"request_id": "a", "ground_truth": [1]}).status_code == 404


def test_inference_events_carry_inputs_and_outputs(service: Service, client) -> None:
    before = len(service.bus.messages(Topic.INFERENCE))
    body = window_request(2, id="evt-1", parameters={"data_time": "2004-01-02"})
    # a backfill (here the admin token) may date its requests
    out = client.post("/v2/models/lstm/infer", json=body, headers={"Authorization": "Bearer s3cret"}).json()
    import time

    def published() -> list[tuple[Any, Any]]:  # (message, event) for every event sent since this test began
        return [(envelope, event) for envelope in service.bus.messages(Topic.INFERENCE)[before:]
                for event in decode_as(envelope, pb.InferenceEventBatch).events]

    # events are sent in batches, one message per model and publishing burst: an earlier test's last requests may
    # share this request's batch, so the event is found by its id
    deadline = time.monotonic() + 5
    while not any(e.request_id == "evt-1" for _, e in published()) and time.monotonic() < deadline:
        time.sleep(0.02)
    [(envelope, event)] = [(m, e) for m, e in published() if e.request_id == "evt-1"]
    assert envelope.key == "lstm" and envelope.headers["ce_type"] == "io.mitiga.inference.batch.v1"
    assert event.model_version == "1"
    assert list(event.inputs.shape) == [2, 50]
    np.testing.assert_allclose(event.inputs.data, body["inputs"][0]["data"], rtol=1e-6)
    np.testing.assert_allclose(event.outputs.data, out["outputs"][0]["data"], rtol=1e-6)
    assert event.data_time.ToDatetime().date().isoformat() == "2004-01-02" and event.caller == "admin"


def test_repository_index_and_metrics(client) -> None:
    index = {row["name"]: row for row in client.post("/v2/repository/index").json()}
    assert index["lstm"]["state"] == "READY" and index["air"]["version"] == "1"
    client.post("/v2/models/lstm/infer", json=window_request(1))
    text = client.get("/metrics").text
    assert 'mitiga_inference_requests_total{model="lstm",version="1"}' in text
    assert "mitiga_inference_request_duration_seconds_bucket" in text
    assert 'mitiga_inference_batch_rows_count{model="lstm",version="1"}' in text
    assert 'mitiga_inference_model_info{model="lstm",version="1"} 1.0' in text


def test_openapi_docs(client) -> None:
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert "/v2/models/{name}/infer" in paths and "/v2/repository/models/{name}/upload" in paths
