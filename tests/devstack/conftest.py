"""Helpers for the multi-process stack tests: a stack on a copy of the reference store, real-data traffic, and
reading topics and Redis directly."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from mitiga_core.events import decode
from mitiga_devstack.stack import DevStack
from tests.conftest import wait_for

__all__ = ["wait_for"]  # the devstack tests import it from here

ADMIN = "test-admin-token"
FAST = {"MITIGA_WINDOW_SIZE": "40", "MITIGA_PERSISTENCE": "2", "MITIGA_MIN_PERFORMANCE_ROWS": "10",
        "MITIGA_COOLDOWN_S": "0", "MITIGA_LOG_LEVEL": "WARNING"}


def make_stack(tmp_path: Path, reference_store: Path, models: tuple[str, ...] = ("lstm",), **kwargs: Any) -> DevStack:
    """A stack on a copy of ``reference_store`` whose inference process serves ``models`` (in the copy at
    ``tmp_path / "models"``: add bundles there before the stack starts)."""
    store = tmp_path / "models"
    shutil.copytree(reference_store, store)
    env = {**FAST, **kwargs.pop("detector_env", {})}
    served = "[" + ",".join(f'"{m}"' for m in models) + "]"
    # the tests replay history: every request's data_time is honoured (MITIGA_DATA_TIME_FROM=anyone)
    return DevStack(tmp_path / "stack", store, admin_token=ADMIN, detector_env=env,
                    inference_env={"MITIGA_MODELS": served, "MITIGA_LOG_LEVEL": "WARNING",
                                   "MITIGA_DATA_TIME_FROM": "anyone"}, **kwargs)


def windows(start: str, end: str) -> tuple[np.ndarray, np.ndarray]:
    """Amazon's open price as the research LSTM sees it: (rows, window) inputs and next-day targets."""
    from mitiga_research.datasets import load_prices, sliding_windows

    prices = load_prices("amzn")["open"]
    x, y = sliding_windows(prices.to_numpy(np.float32), 50)
    dates = prices.index[50:]
    mask = (dates >= start) & (dates < end)
    return x[mask], y[mask]


class Traffic:
    """A REST client of the inference service that remembers what it was served."""

    def __init__(self, url: str, feedback_token: str | None = None) -> None:
        self.client = httpx.Client(base_url=url, timeout=60)
        self.labels = {"Authorization": f"Bearer {feedback_token}"} if feedback_token else {}
        self.served: list[str] = []
        self.failures: list[str] = []

    def infer(self, x: np.ndarray, data_time: str | None = None) -> dict[str, Any] | None:
        body: dict[str, Any] = {"id": uuid.uuid4().hex, "inputs": [
            {"name": "window", "shape": list(x.shape), "datatype": "FP32", "data": x.reshape(-1).tolist()}]}
        if data_time:
            body["parameters"] = {"data_time": data_time}
        try:
            response = self.client.post("/v2/models/lstm/infer", json=body)
        except httpx.HTTPError as exc:
            self.failures.append(f"{type(exc).__name__}: {exc}")
            return None
        if response.status_code != 200:
            self.failures.append(f"{response.status_code}: {response.text}")
            return None
        served = response.json()
        self.served.append(served["id"])
        return dict(served)

    def feedback(self, request_id: str, y: np.ndarray) -> None:
        self.client.post("/v2/models/lstm/feedback", json={"request_id": request_id, "ground_truth": y.tolist()},
                         headers=self.labels).raise_for_status()

    def version(self) -> str:
        return str(self.client.get("/v2/models/lstm").json()["parameters"]["version"])

    def close(self) -> None:
        self.client.close()


def read_topic(bootstrap: str, topic: str, timeout_s: float = 5.0) -> list[Any]:
    """Every record on ``topic`` from the start (a consumer without a group)."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             enable_auto_commit=False, consumer_timeout_ms=int(timeout_s * 1000))
    records = list(consumer)
    consumer.close()
    return records


def decoded(bootstrap: str, topic: str, *, skip_invalid: bool = False) -> list[Any]:
    """The events on ``topic``; ``skip_invalid`` leaves out the malformed records a test put there on purpose."""
    from mitiga_core.errors import EventDecodeError
    from mitiga_core.events import Envelope

    events = []
    for r in read_topic(bootstrap, topic):
        try:
            events.append(decode(Envelope(payload=r.value, headers={k: v.decode() for k, v in r.headers})))
        except EventDecodeError:
            if not skip_invalid:
                raise
    return events


def metric(url: str, name: str, **labels: str) -> float:
    """The sum of a metric's samples on a service's /metrics whose labels include ``labels``."""
    from prometheus_client.parser import text_string_to_metric_families

    total = 0.0
    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics", timeout=10).text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


