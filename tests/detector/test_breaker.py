"""The retraining circuit breaker: a model whose retrains keep being refused or failing, or that keeps retraining,
stops retraining on its own (a critical alert says so) until an admin resumes it; manual retraining stays possible;
an admin may pause a model by hand."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest

from mitiga_core.events import encode
from mitiga_core.pb.mitiga.v1 import events_pb2 as pb
from mitiga_core.progress import lock_key
from tests.detector.conftest import Harness, feedback, inference, write_bundle
from tests.detector.test_service import AUTH, admin_service  # noqa: F401 - the fixture

RNG = np.random.default_rng(3)


def _progress(request_id: str, status: str) -> object:
    event = pb.RetrainProgress(event_id=f"p-{request_id}-{status}", request_id=request_id, model_name="tab",
                               status=status)
    event.time.GetCurrentTime()
    return encode(event, source="test", key="tab")


def _degraded_window(h: Harness, tag: str) -> None:
    """One window of 50 rows whose truth is far from the model's answers (the error ten times the validation's)."""
    x = RNG.normal(size=(50, 3)).astype(np.float32)
    pred = x.sum(axis=1, keepdims=True)
    h.core.handle(inference(x, pred, request_id=tag))
    h.core.handle(feedback([(tag, (pred[:, 0] + RNG.normal(size=50)).tolist())]))


def _outcomes(h: Harness, outcome: str) -> float:
    return h.value("mitiga_retrain_triggers_total", model="tab", outcome=outcome) or 0.0


@pytest.fixture
def h(tmp_path: Path):  # type: ignore[no-untyped-def]
    harness = Harness(tmp_path, cooldown_s=0, retry_after_rows=0, max_attempts=100, breaker_failures=3,
                      breaker_max_retrains=100)
    write_bundle(harness.store)
    yield harness
    harness.publisher.stop()


def test_three_refused_retrains_in_a_row_pause_automatic_retraining(h: Harness) -> None:
    for i in range(2):
        h.core.handle(_progress(f"retrain-tab-{i}", "refused"))
    h.core.handle(_progress("retrain-tab-2", "promoted"))  # a challenger that won ends the streak
    for i in range(3, 5):
        h.core.handle(_progress(f"retrain-tab-{i}", "refused"))
    assert h.core.breaker.paused("tab") is None
    h.core.handle(_progress("retrain-tab-5", "failed"))
    paused = h.core.breaker.paused("tab")
    assert paused is not None and paused["reason"] == "3 retrains in a row refused or failed"

    for i in range(4):
        _degraded_window(h, f"w{i}")
    assert h.core.state_of("tab")["level"] == "critical"
    assert _outcomes(h, "paused") >= 1 and _outcomes(h, "requested") == 0 and h.launcher.specs == {}
    assert h.value("mitiga_retrain_paused", model="tab") == 1
    alerts = {a["labels"]["alertname"]: a for a in h.core.alerting.active()}
    assert "MitigaRetrainPaused" in alerts and "MitigaModelCritical" in alerts
    assert "3 retrains in a row" in alerts["MitigaRetrainPaused"]["annotations"]["summary"]

    outcome, request_id = h.core.manual_retrain("tab", "1", {})  # a person may still retrain it
    assert outcome == "requested" and request_id in h.launcher.specs
    h.state.delete(lock_key("tab"))

    assert h.core.breaker.resume("tab", by="alice")
    _degraded_window(h, "after")
    assert _outcomes(h, "requested") == 1 and h.core.breaker.status("tab")["failed_in_a_row"] == 0


def test_a_model_that_keeps_retraining_is_paused(tmp_path: Path) -> None:
    h = Harness(tmp_path, cooldown_s=0, retry_after_rows=0, max_attempts=100, breaker_failures=100,
                breaker_max_retrains=3, breaker_period_s=86400)
    write_bundle(h.store)
    for i in range(8):
        _degraded_window(h, f"w{i}")
        h.state.delete(lock_key("tab"))  # each run ends at once (neither refused nor failed)
    assert _outcomes(h, "requested") == 4  # the fourth request within a day opens the breaker
    assert h.core.breaker.paused("tab")["reason"] == "4 automatic retrains within 1 days"
    assert _outcomes(h, "paused") >= 1
    h.publisher.stop()


def test_an_admin_pauses_and_resumes_a_model_over_http(admin_service) -> None:  # noqa: F811
    url, _store, _state, _launcher = admin_service
    assert httpx.get(f"{url}/v1/models/tab/retraining").json()["paused"] is None
    refused = httpx.post(f"{url}/v1/models/tab/retraining/pause", json={"reason": "x"})
    assert refused.status_code == 401
    assert httpx.post(f"{url}/v1/models/nope/retraining/pause", headers=AUTH).status_code == 404
    bad = httpx.post(f"{url}/v1/models/tab/retraining/pause", json={"reason": ""}, headers=AUTH)
    assert bad.status_code == 422 and "reason" in bad.json()["error"]
    paused = httpx.post(f"{url}/v1/models/tab/retraining/pause", json={"reason": "looking into the labels",
                                                                       "by": "alice"}, headers=AUTH)
    assert paused.status_code == 200
    assert paused.json()["paused"]["reason"] == "looking into the labels" and paused.json()["paused"]["by"] == "alice"
    alerts = httpx.get(f"{url}/v1/alerts").json()["alerts"]  # at once, before any window
    assert [(a["labels"]["alertname"], a["labels"]["severity"]) for a in alerts] == [("MitigaRetrainPaused",
                                                                                      "critical")]
    assert "looking into the labels" in alerts[0]["annotations"]["description"] and "alice" in alerts[0][
        "annotations"]["description"]
    resumed = httpx.post(f"{url}/v1/models/tab/retraining/resume", json={"by": "bob"}, headers=AUTH)
    assert resumed.status_code == 200 and resumed.json()["paused"] is None
    assert httpx.get(f"{url}/v1/alerts").json()["alerts"] == []
