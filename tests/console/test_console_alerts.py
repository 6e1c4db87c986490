"""Without Alertmanager (``make demo``, ``mitiga up``), the console's Alerts page shows the alerts the detector
raises itself from its verdicts: the same names, the page alone once a model is critical, with its runbook."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest

from mitiga_core.events import Topic
from tests.detector.conftest import feedback, inference, write_bundle

pytestmark = pytest.mark.integration


@pytest.fixture
def bare(tmp_path: Path):  # type: ignore[no-untyped-def]
    from mitiga_console.app import create_app
    from mitiga_console.settings import ConsoleSettings
    from mitiga_core.store import FilesystemModelStore
    from mitiga_standalone.stack import StandaloneStack
    from tests.conftest import serve

    write_bundle(FilesystemModelStore(tmp_path), "tab", units="kWh")
    stack = StandaloneStack(tmp_path, detector={"window_size": 50, "engine": "scipy", "trigger": "alert_only",
                                                "admin_token": "tok"},
                            inference={"models": []})
    stack.start()
    console = serve(create_app(ConsoleSettings(inference_url=stack.inference.url, detector_url=stack.detector.url,
                                               model_store_path=tmp_path), store=FilesystemModelStore(tmp_path)))
    yield stack, console
    console.stop()
    stack.stop()


def _send(stack, windows: int, noise: float, shift: float, tag: str) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(len(tag) + windows)
    for i in range(windows):  # each window's truth after its prediction was seen, as in production
        x = rng.normal(size=(50, 3)).astype(np.float32) + shift
        pred = x.sum(axis=1, keepdims=True)
        rid = f"{tag}{i}"
        seen = stack.processed("InferenceEvent"), stack.processed("FeedbackEvent")
        stack.bus.publish(Topic.INFERENCE, inference(x, pred, request_id=rid))
        stack.wait_processed("InferenceEvent", seen[0] + 1, 60)
        stack.bus.publish(Topic.FEEDBACK, feedback([(rid, (pred[:, 0] + rng.normal(size=50) * noise).tolist())]))
        stack.wait_processed("FeedbackEvent", seen[1] + 1, 60)


def test_the_alerts_page_shows_the_detectors_own_alerts(bare) -> None:  # type: ignore[no-untyped-def]
    stack, console = bare
    _send(stack, 6, 0.1, 0.0, "calm")
    calm = httpx.get(f"{console.url}/alerts", timeout=30).text
    assert 'id="alerts-source">From the detector' in calm and 'id="no-alerts"' in calm

    _send(stack, 6, 0.1, 2.0, "moved")  # the inputs move, the error does not: warnings
    moved = httpx.get(f"{stack.detector.url}/v1/alerts", timeout=30).json()["alerts"]
    assert moved and {a["labels"]["severity"] for a in moved} == {"warning"}
    assert "MitigaDriftFlagWarning" in {a["labels"]["alertname"] for a in moved}

    _send(stack, 4, 1.0, 2.0, "worse")  # now the error is ten times the validation's: the page, alone
    alerts = httpx.get(f"{stack.detector.url}/v1/alerts", timeout=30).json()["alerts"]
    assert [a["labels"]["alertname"] for a in alerts] == ["MitigaModelCritical"]
    page = alerts[0]
    assert page["labels"]["model"] == "tab" and page["labels"]["severity"] == "critical"
    assert "mae_ratio = " in page["annotations"]["summary"] and "(>= 1.5)" in page["annotations"]["summary"]
    assert page["annotations"]["runbook_url"].endswith("docs/alerts.md#mitigamodelcritical")
    health = httpx.get(f"{console.url}/models/tab", timeout=30).text  # the model's own units, what decided
    state = httpx.get(f"{stack.detector.url}/v1/models/tab/drift", timeout=30).json()["last_window"]
    assert state["units"] == "kWh" and state["in_units"]["mae"] > 0.5  # the truth strays by N(0, 1)
    assert f'MAE {state["in_units"]["mae"]:.4g} kWh' in health
    assert 'id="deciding">mae_ratio ' in health and "(&gt;= 1.5)" in health
    shown = httpx.get(f"{console.url}/alerts", timeout=30).text
    assert "MitigaModelCritical" in shown and 'id="critical-banner"' in shown
    assert 'href="https://github.com/mitiga/mitiga/blob/main/docs/alerts.md#mitigamodelcritical"' in shown


def test_an_admin_pauses_and_resumes_automatic_retraining_from_the_model_page(bare) -> None:  # type: ignore[no-untyped-def]
    _, console = bare
    anonymous = httpx.post(f"{console.url}/models/tab/retraining", data={"action": "pause"})
    assert anonymous.status_code == 401
    with httpx.Client(base_url=console.url, cookies={"mitiga_admin": "tok"}, timeout=30) as admin:
        assert 'id="retraining-form"' in admin.get("/models/tab").text
        assert admin.post("/models/tab/retraining", data={"action": "explode"}).status_code == 400
        paused = admin.post("/models/tab/retraining", data={"action": "pause", "reason": "checking the labels"})
        assert paused.status_code == 303
        page = admin.get("/models/tab").text
        assert 'id="paused-banner"' in page and "checking the labels" in page and "resume automatic" in page
        assert "MitigaRetrainPaused" in admin.get("/alerts").text
        assert admin.post("/models/tab/retraining", data={"action": "resume"}).status_code == 303
        page = admin.get("/models/tab").text
        assert 'id="paused-banner"' not in page and "pause automatic retraining" in page
        assert "MitigaRetrainPaused" not in admin.get("/alerts").text


def test_an_admin_rejects_a_challenger_awaiting_approval_from_the_model_page(bare) -> None:  # type: ignore[no-untyped-def]
    from mitiga_core.promotion import Candidate, start_trial

    stack, console = bare
    write_bundle(stack.store, "tab", seed=1)  # version 2
    stack.store.set_champion("tab", "1")
    stack.store.record_decision("tab", {"version": "2", "promote": True, "metric": "mae", "champion": 0.31,
                                        "challenger": 0.12, "holdout_rows": 60, "awaiting_approval": True})
    start_trial(stack.store, "tab", Candidate(version="2", mode="approval", champion="1"))
    with httpx.Client(base_url=console.url, cookies={"mitiga_admin": "tok"}, timeout=30) as admin:
        page = admin.get("/models/tab").text
        assert 'id="approval"' in page and "awaits approval" in page and "0.12 vs champion 0.31" in page
        assert "awaiting approval</strong>" in page
        wrong = admin.post("/models/tab/approval", data={"version": "9", "decision": "reject"})
        assert wrong.status_code == 409
        done = admin.post("/models/tab/approval", data={"version": "2", "decision": "reject",
                                                        "reason": "a holiday week"})
        assert done.status_code == 303
        page = admin.get("/models/tab").text
        assert 'id="approval"' not in page and "rejected by console" in page
    assert stack.store.champion("tab") == "1" and stack.store.candidate("tab") is None
