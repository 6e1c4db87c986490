"""Who may steer what the detector learns: request ids that cannot be taken over, data times that cannot lie, and
feedback that can require its own credential."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mitiga_core.bundle import read_manifest
from mitiga_core.events import Topic, decode_as
from mitiga_core.pb.mitiga.v1 import events_pb2 as pb
from tests.inference.conftest import Service, start_service, window_request

pytestmark = pytest.mark.slow  # serves the reference models

FEEDBACK = {"Authorization": "Bearer labels-only"}


@pytest.fixture(scope="module")
def guarded(reference_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    root = tmp_path_factory.mktemp("store")
    shutil.copytree(reference_store, root, dirs_exist_ok=True)
    svc = start_service(root, feedback_token="labels-only")
    yield svc
    svc.running.stop()


def test_a_reused_request_id_is_refused_and_never_reaches_the_detector(guarded: Service) -> None:
    with guarded.client() as client:
        first = client.post("/v2/models/lstm/infer", json=window_request(2, id="order-17"))
        assert first.status_code == 200 and first.json()["id"] == "order-17"
        again = client.post("/v2/models/lstm/infer", json=window_request(3, id="order-17"))
        assert again.status_code == 409 and "'order-17'" in again.json()["error"]
        assert "id:" in again.json()["error"]
        # a request that fails does not take its id: the client may retry with it
        bad = client.post("/v2/models/lstm/infer", json={**window_request(1, id="retry-me"),
                                                        "parameters": {"data_time": "not a date"}})
        assert bad.status_code == 400
        assert client.post("/v2/models/lstm/infer", json=window_request(1, id="retry-me")).status_code == 200
        # ids are per model, and server-chosen ids never collide
        assert client.post("/v2/models/lstm/infer", json=window_request(1)).json()["id"] != \
            client.post("/v2/models/lstm/infer", json=window_request(1)).json()["id"]
        metrics = client.get("/metrics").text
    assert 'mitiga_inference_errors_total{code="409",model="lstm",version="1"} 1.0' in metrics

    def published() -> list[pb.InferenceEvent]:
        return [e for env in guarded.bus.messages(Topic.INFERENCE) for e in decode_as(env, pb.InferenceEventBatch).events]

    deadline = time.monotonic() + 10
    while "retry-me" not in {e.request_id for e in published()} and time.monotonic() < deadline:
        time.sleep(0.02)  # events leave in order: once the later request's is out, the earlier ones are too
    assert [e.inputs.shape[0] for e in published() if e.request_id == "order-17"] == [2]  # the first request only


def test_data_time_may_not_lie_in_the_future_nor_long_before_the_training_data(guarded: Service) -> None:
    start = read_manifest(guarded.store.path("lstm", "1")).training.data_start
    assert start
    first = datetime.fromisoformat(start[:10])
    cases = {
        "9999-01-01": 400,
        (datetime.now(UTC) + timedelta(days=3)).isoformat(): 400,
        (datetime.now(UTC) + timedelta(hours=1)).isoformat(): 200,  # within the allowed clock skew
        (first - timedelta(days=400)).date().isoformat(): 400,
        (first - timedelta(days=30)).date().isoformat(): 200,
    }
    with guarded.client() as client:
        for when, status in cases.items():
            response = client.post("/v2/models/lstm/infer", json=window_request(1, parameters={"data_time": when}))
            assert response.status_code == status, (when, response.text)
            if status == 400:
                assert "parameters.data_time" in response.json()["error"]


def test_feedback_needs_its_own_token_when_one_is_set(guarded: Service) -> None:
    body = {"request_id": "any", "ground_truth": [1.0]}
    with guarded.client() as client:
        assert client.post("/v2/models/lstm/feedback", json=body).status_code == 401
        wrong = client.post("/v2/models/lstm/feedback", json=body, headers={"Authorization": "Bearer s3cret"})
        assert wrong.status_code == 403 and "feedback token" in wrong.json()["error"]  # the admin token is not it
        assert client.post("/v2/models/lstm/feedback", json=body, headers=FEEDBACK).status_code == 202
        # inference itself stays open
        assert client.post("/v2/models/lstm/infer", json=window_request(1)).status_code == 200


def test_without_a_feedback_token_feedback_stays_open(client) -> None:  # type: ignore[no-untyped-def]
    assert client.post("/v2/models/lstm/feedback", json={"request_id": "x", "ground_truth": [1.0]}).status_code == 202


def test_ground_truth_must_fit_the_outputs_its_request_was_answered_with(guarded: Service) -> None:
    with guarded.client() as client:
        rid = client.post("/v2/models/lstm/infer", json=window_request(3, id="fit-me")).json()["id"]
        wrong = client.post("/v2/models/lstm/feedback", headers=FEEDBACK,
                            json={"items": [{"request_id": rid, "ground_truth": [1.0, 2.0]}]})
        assert wrong.status_code == 400 and "items[0].ground_truth" in wrong.json()["error"]
        assert "which takes 3" in wrong.json()["error"]
        right = client.post("/v2/models/lstm/feedback", headers=FEEDBACK,
                            json={"items": [{"request_id": rid, "ground_truth": [1.0, 2.0, 3.0]}]})
        assert right.status_code == 202
