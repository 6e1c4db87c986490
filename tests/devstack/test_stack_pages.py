"""The pages people get, end to end over real Kafka, Redis, Prometheus and Alertmanager with the shipped rules and
Alertmanager configuration: the air-quality regressor is replayed hours like the ones it was trained on, with their
true CO, for more than 500 windows, and nobody is notified; then its ground truth moves away from its answers, and
exactly one notification comes, the model's page, naming the signal that decided it."""

from __future__ import annotations

import json
import time

import httpx
import numpy as np
import pytest

from mitiga_core.store import FilesystemModelStore
from mitiga_devstack.alerts import AlertSettings
from mitiga_devstack.webhook import WebhookReceiver
from tests.devstack.conftest import make_stack, metric, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]
WINDOW = 40
STABLE_WINDOWS = 520


@pytest.fixture(scope="module")
def paged(tmp_path_factory, reference_store):  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("pages")
    webhook = WebhookReceiver()  # the stack starts and stops it
    stack = make_stack(tmp, reference_store, models=("air",), webhook=webhook, interval="1s", group_wait="1s",
                       # the stack scrapes every second (so a 1 s scrape timeout): a detector busy replaying 20
                       # windows a second on a loaded 2-core machine can miss scrapes for a minute; the service
                       # alerts have their own tests (test_alert_rules.py), the model pages are what this one checks
                       alerts=AlertSettings(page_for="2s", drift_for="3s", retrain_running_for="2s", down_for="30m"),
                       detector_env={"MITIGA_TRIGGER": "off", "MITIGA_WINDOW_SIZE": str(WINDOW),
                                     "MITIGA_MIN_PERFORMANCE_ROWS": "40", "MITIGA_PERFORMANCE_WINDOW": "200"})
    store = FilesystemModelStore(tmp / "models")
    training = np.load(store.path("air", str(store.champion("air"))) / "training.npz")
    stack.start()
    client = httpx.Client(base_url=stack.inference.url, timeout=60)
    rng = np.random.default_rng(11)

    def send(windows: int, offset: float) -> None:
        """``windows`` requests of one window each, rows drawn from the training hours, each with its truth."""
        for _ in range(windows):
            rows = rng.integers(0, len(training["x"]), WINDOW)
            x, y = training["x"][rows], training["y"][rows].reshape(WINDOW, -1)[:, 0] + offset
            answer = client.post("/v2/models/air/infer", json={"inputs": [
                {"name": "features", "shape": list(x.shape), "datatype": "FP32", "data": x.reshape(-1).tolist()}]})
            assert answer.status_code == 200, answer.text
            sent = client.post("/v2/models/air/feedback", json={"request_id": answer.json()["id"],
                                                                 "ground_truth": y.tolist()})
            assert sent.status_code == 202, sent.text
            time.sleep(0.03)  # about 20 windows a second: Prometheus (1 s) sees the levels as they go

    def windows_judged() -> float:
        return metric(stack.detector.url, "mitiga_detector_processing_seconds_count", stage="window") or 0

    send(STABLE_WINDOWS, 0.0)
    wait_for(lambda: windows_judged() >= STABLE_WINDOWS, 120, "the detector to judge the stable windows")
    time.sleep(10)  # longer than every rule's `for` here plus a scrape, an evaluation and Alertmanager's group_wait
    stable = (list(webhook.notifications), windows_judged(), stack.detector.url)
    yield stack, webhook, stable, send, windows_judged
    client.close()
    stack.stop()


def test_a_stable_replay_of_more_than_500_windows_notifies_nobody(paged) -> None:  # type: ignore[no-untyped-def]
    _, _, (notifications, judged, detector), _, _ = paged
    assert judged >= 500
    assert notifications == []
    state = httpx.get(f"{detector}/v1/models/air/drift", timeout=10).json()
    assert state["level"] != "critical"


def test_a_degradation_notifies_exactly_once_with_the_page(paged) -> None:  # type: ignore[no-untyped-def]
    stack, webhook, _, send, windows_judged = paged
    before = windows_judged()
    send(30, 3.0)  # the truth 3 mg/m³ above what the model says: its error several times its validation error
    wait_for(lambda: windows_judged() >= before + 30, 60, "the detector to judge the degraded windows")
    wait_for(lambda: webhook.notifications, 60, "a notification")
    send(20, 3.0)  # the signals' own warnings become active now, under the page
    time.sleep(10)
    alerts = webhook.alerts()
    print(json.dumps(alerts[:1], indent=1))  # the README shows this notification
    assert [a["labels"]["alertname"] for a in alerts] == ["MitigaModelCritical"], alerts
    page = alerts[0]
    assert page["status"] == "firing" and page["labels"]["model"] == "air"
    assert page["annotations"]["summary"].startswith("air is critical: ")
    assert "mae_ratio = " in page["annotations"]["summary"]
    assert page["annotations"]["runbook_url"].endswith("docs/alerts.md#mitigamodelcritical")
    firing = httpx.get(f"{stack.prometheus.url}/api/v1/alerts", timeout=10).json()["data"]["alerts"]
    warned = {a["labels"]["alertname"] for a in firing if a["labels"]["severity"] == "warning"}
    assert "MitigaMaeRatioWarning" in warned  # it fired in Prometheus; Alertmanager held it under the page
