"""The detector as a service on 127.0.0.1: the consumer on the bus, dead letters, metrics, state and report."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from mitiga_core import retrain_request
from mitiga_core.bus import InMemoryBus
from mitiga_core.events import Envelope, Topic, encode
from mitiga_core.pb.mitiga.v1 import events_pb2 as pb
from mitiga_core.state import InMemoryStateStore
from mitiga_core.store import FilesystemModelStore
from mitiga_detector.app import create_app
from mitiga_detector.settings import DetectorSettings
from tests.conftest import serve
from tests.detector.conftest import RecordingLauncher, feedback, inference, write_bundle


@pytest.fixture
def service(tmp_path: Path):
    store = FilesystemModelStore(tmp_path)
    write_bundle(store)
    bus = InMemoryBus()
    settings = DetectorSettings(window_size=30, engine="alibi", trigger_policy="drift", sequential=False)
    app = create_app(settings, bus=bus, store=store, state=InMemoryStateStore(), launcher=RecordingLauncher())
    running = serve(app)
    yield running.url, bus
    running.stop()


def wait_for(predicate, timeout: float = 120.0) -> None:
    """Until ``predicate()`` holds. The deadline only bounds a failure: the first event of a test builds the model's
    detectors (a cold Alibi/TensorFlow import), which takes tens of seconds on a busy 2-core machine."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_bad_events_go_to_the_dead_letter_topic_and_the_consumer_keeps_going(service) -> None:
    url, bus = service
    good = inference(np.zeros((3, 3), np.float32), np.zeros((3, 1), np.float32), request_id="ok")
    bad = [
        Envelope(payload=b"\x00garbage", headers={**good.headers, "ce_id": "g1"}, key="tab"),
        Envelope(payload=good.payload, headers={**good.headers, "ce_id": "g2", "ce_type": "io.other.v1"}),
        Envelope(payload=good.payload, headers={"ce_id": "g3"}),
        inference(np.ones((2, 3), np.float32), np.ones((2, 1), np.float32), name="ghost"),
        inference(np.ones((2, 5), np.float32), np.ones((2, 1), np.float32)),
        encode(pb.ModelRollout(event_id="ro", model_name="tab"), source="t"),
    ]
    for envelope in bad:
        bus.publish(Topic.INFERENCE, envelope)
    bus.publish(Topic.FEEDBACK, Envelope(payload=b"\xff", headers={**good.headers, "ce_id": "g4"}))
    bus.publish(Topic.INFERENCE, good)
    wait_for(lambda: len(bus.messages(Topic.DLQ)) == 7)  # the first event builds the detectors
    reasons = [e.headers["mitiga_dlq_reason"] for e in bus.messages(Topic.DLQ)]
    assert any("not a valid InferenceEvent" in r for r in reasons)
    assert any("unknown ce_type" in r for r in reasons)
    assert any("unknown model" in r and "ghost" in r for r in reasons)
    assert any("do not fit" in r for r in reasons)
    assert bus.messages(Topic.DLQ)[-1].headers["mitiga_dlq_topic"] == Topic.FEEDBACK
    wait_for(lambda: 'mitiga_detector_events_total{type="InferenceEvent"} 1.0' in httpx.get(f"{url}/metrics").text)
    assert 'mitiga_detector_events_rejected_total{reason="invalid"} 7.0' in httpx.get(f"{url}/metrics").text


@pytest.mark.slow  # windows of every default signal through the served API
def test_metrics_state_and_report(service) -> None:
    url, bus = service
    rng = np.random.default_rng(0)
    for i in range(12):
        x = rng.normal(size=(10, 3)).astype(np.float32) + (2.0 if i >= 6 else 0.0)
        y = x.sum(axis=1, keepdims=True)
        bus.publish(Topic.INFERENCE, inference(x, y, request_id=f"s{i}"))
        bus.publish(Topic.FEEDBACK, feedback([(f"s{i}", (y[:, 0] + 0.1).tolist())]))
        if i == 5:  # let the first half be joined before the windows of the second half close
            wait_for(lambda: 'mitiga_feedback_joined_total{model="tab"} 6.0' in httpx.get(f"{url}/metrics").text)
    wait_for(lambda: httpx.get(f"{url}/v1/models/tab/drift").json()["windows"] == 4)
    state = httpx.get(f"{url}/v1/models/tab/drift").json()
    assert state["level"] == "critical" and state["episode_id"]
    assert state["last_window"]["types"][0] == "data" and state["last_window"]["mae"] >= 0
    text = httpx.get(f"{url}/metrics").text
    for name in ("mitiga_drift_p_value", "mitiga_drift_statistic", "mitiga_drift_wasserstein", "mitiga_drift_psi",
                 "mitiga_drift_jensen_shannon", "mitiga_drift_detected", "mitiga_drift_share_features",
                 "mitiga_model_performance", "mitiga_drift_window_rows", "mitiga_detector_processing_seconds_bucket",
                 "mitiga_feedback_joined_total", "mitiga_drift_episodes_total", "mitiga_retrain_triggers_total",
                 "mitiga_drift_level", "mitiga_outlier_share", "mitiga_estimated_metric", "mitiga_drift_signal"):
        assert name in text, name
    assert 'mitiga_drift_level{drift_type="data",model="tab"} 2.0' in text
    history = httpx.get(f"{url}/v1/models/tab/drift/history").json()["windows"]
    assert len(history) == 4 and history[-1] == state["last_window"]
    assert all(set(w["p_values"]) == {"a", "b", "c"} and w["version"] == "1" for w in history)
    assert httpx.get(f"{url}/v1/models/nope/drift/history").status_code == 404
    report = httpx.get(f"{url}/v1/models/tab/drift/report")
    assert report.status_code == 200 and report.text.count("data:image/png;base64,") == 3
    assert httpx.get(f"{url}/v1/models/nope/drift").status_code == 404
    assert httpx.get(f"{url}/v1/models/nope/drift/report").status_code == 404
    assert httpx.get(f"{url}/v2/health/ready").json() == {"ready": True}


@pytest.fixture
def admin_service(tmp_path: Path):
    store = FilesystemModelStore(tmp_path)
    write_bundle(store)
    state = InMemoryStateStore()
    launcher = RecordingLauncher()
    app = create_app(DetectorSettings(admin_token="tok"), bus=InMemoryBus(), store=store, state=state,
                     launcher=launcher)
    running = serve(app)
    yield running.url, store, state, launcher
    running.stop()


AUTH = {"Authorization": "Bearer tok"}


def test_manual_retrain_launches_a_job_with_the_options(admin_service) -> None:
    from mitiga_core.labelled import LabelledLog
    from mitiga_core.progress import write_progress

    url, _store, state, launcher = admin_service
    body = {"strategy": "full_history", "epochs": 3, "data_start": "2024-01-01",
            "dataset": {"x": [[1, 2, 3], [4, 5, 6]], "y": [[6], [15]], "dates": ["2024-02-01", "2024-02-02"]}}
    r = httpx.post(f"{url}/v1/models/tab/retrain", json=body, headers=AUTH)
    assert r.status_code == 202, r.text
    request_id = r.json()["request_id"]
    spec = launcher.specs[request_id]
    asked = retrain_request.settings_fields(retrain_request.parse(spec.env[retrain_request.ENV]))
    assert asked == {"model": "tab", "base_version": "1", "strategy": "full_history", "mode": "warm_start",
                     "request_id": request_id, "trigger": "manual", "epochs": "3", "data_start": "2024-01-01"}
    labelled = LabelledLog(state).read("tab")
    assert labelled is not None and labelled.y[:, 0].tolist() == [6.0, 15.0]
    # a second request while the first holds the lock
    r = httpx.post(f"{url}/v1/models/tab/retrain", json={}, headers=AUTH)
    assert r.status_code == 503 and "already running" in r.json()["error"]
    assert httpx.get(f"{url}/v1/retrains/{request_id}").status_code == 404
    write_progress(state, request_id, status="running", epoch=1, epochs=3)
    assert httpx.get(f"{url}/v1/retrains/{request_id}").json()["epoch"] == 1


@pytest.mark.parametrize(("body", "headers", "status", "needle"), [
    ({}, {}, 401, "bearer"),
    ({}, {"Authorization": "Bearer nope"}, 403, "invalid"),
    ({"strategy": "bogus"}, AUTH, 422, "strategy"),
    ({"epochs": 0}, AUTH, 422, "epochs"),
    ({"surprise": 1}, AUTH, 422, "surprise"),
    ({"dataset": {"x": [[1, 2]], "y": [[1]], "dates": ["2024-01-01"]}}, AUTH, 400, "dataset.x"),
    ({"dataset": {"x": [[1, 2, 3]], "y": [[1]], "dates": []}}, AUTH, 422, "dataset.dates"),
    ({"base_version": "9"}, AUTH, 404, "no version"),
])
def test_bad_manual_retrains_fail_clearly_and_launch_nothing(admin_service, body, headers, status, needle) -> None:
    url, store, _state, launcher = admin_service
    r = httpx.post(f"{url}/v1/models/tab/retrain", json=body, headers=headers)
    assert r.status_code == status, r.text
    assert needle in r.json()["error"]
    assert launcher.specs == {} and store.list_versions("tab") == ["1"]


@pytest.mark.parametrize("content_length", [False, True])
def test_a_gigabyte_post_is_refused_before_it_is_read(admin_service, content_length: bool) -> None:
    from tests.flood import flood, rss_bytes

    url = admin_service[0] + "/v1/models/tab/retrain"
    before = rss_bytes()
    # a reply can be lost to the connection's reset under load: one in three must be read, none may read the body
    tries = [flood(url, total=1 << 30, content_length=content_length) for _ in range(3)]  # no token
    assert 401 in [s for s, _ in tries] and {s for s, _ in tries} <= {401, None} and all(n < 64 << 20 for _, n in tries)
    tries = [flood(url, total=1 << 30, content_length=content_length, headers=AUTH) for _ in range(3)]  # too big
    assert 413 in [s for s, _ in tries] and {s for s, _ in tries} <= {413, None} and all(n < 128 << 20 for _, n in tries)
    grown = rss_bytes() - before
    assert grown < 64 << 20, f"resident memory grew by {grown >> 20} MB"
