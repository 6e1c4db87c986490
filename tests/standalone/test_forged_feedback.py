"""The attack of issue 12, end to end through the standalone stack: a client that can reach the inference service
tries to choose the model that gets promoted, with a burst of requests dated where the gate looks and ground truth
of its own. Every layer holds: the far-future date is refused, a reused id is refused, and the burst that does get
in cannot make up the gate's holdout."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from mitiga_standalone.stack import StandaloneStack

pytestmark = pytest.mark.slow


def _window(value: float) -> dict[str, object]:
    return {"name": "window", "shape": [1, 50], "datatype": "FP32", "data": [value] * 50}


def test_forged_ground_truth_cannot_pick_the_promoted_model(reference_store: Path, tmp_path: Path) -> None:
    store_root = tmp_path / "models"
    shutil.copytree(reference_store, store_root)
    stack = StandaloneStack(store_root, detector={"trigger": "off", "cooldown_s": 0},
                            retrainer={"epochs": 2, "holdout_rows": 60, "window_rows": 500, "min_rows": 30})
    stack.start()
    try:
        with httpx.Client(base_url=stack.inference.url, timeout=60) as client:
            deadline = time.monotonic() + 120
            while client.get("/v2/health/ready").status_code != 200:
                assert time.monotonic() < deadline, "the inference service did not become ready"
                time.sleep(0.1)
            far = client.post("/v2/models/lstm/infer", json={"id": "x-0", "inputs": [_window(40.0)],
                                                               "parameters": {"data_time": "9999-01-01"}})
            assert far.status_code == 400 and "data_time" in far.json()["error"]
            served = []
            for i in range(60):  # the burst: one plausible date, where the gate's holdout would look
                r = client.post("/v2/models/lstm/infer", json={"id": f"x-{i}", "inputs": [_window(40.0 + i % 3)],
                                                                "parameters": {"data_time": "2002-06-03"}})
                assert r.status_code == 200, r.text
                served.append(r.json()["id"])
            again = client.post("/v2/models/lstm/infer", json={"id": "x-1", "inputs": [_window(1.0)]})
            assert again.status_code == 409  # nor can it take over a request it (or anyone) made
            stack.wait_processed("InferenceEvent", 60)
            forged = [{"request_id": rid, "ground_truth": [1000.0]} for rid in served]  # truth of its choosing
            assert client.post("/v2/models/lstm/feedback", json={"items": forged}).status_code == 202
            stack.wait_processed("FeedbackEvent", 1)
        champion = stack.store.champion("lstm")
        outcome, _ = stack.detector_core.manual_retrain("lstm", champion or "1", {})
        assert outcome == "requested"
        stack.launcher.wait_all()
        decision = stack.store.decisions("lstm")[-1]
        assert decision["promote"] is False and "holdout refused" in decision["reason"], decision
        assert decision["holdout_top_time_share"] > 0.5
        assert stack.store.champion("lstm") == champion  # nothing the attacker chose is served
    finally:
        stack.stop()
    assert np.isfinite(decision["challenger"])
