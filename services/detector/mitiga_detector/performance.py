"""Ground truth joined to predictions by request id, and the error metrics over a rolling window.

Predictions wait in the StateStore (with a TTL) until their feedback arrives, so a restarted detector, or another
replica, can still join them. Feedback that finds no prediction is counted, never silently ignored.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from mitiga_core.metrics import regression_metrics

if TYPE_CHECKING:
    from mitiga_core.bundle import Scaler
    from mitiga_core.state import StagedWrites, StateStore
    from mitiga_core.types import AnyArray, FloatArray


@dataclass(frozen=True)
class StoredPrediction:
    version: str
    inputs: FloatArray
    outputs: FloatArray
    when: str
    """The request's date (its ``data_time`` when given), ISO 8601."""


class FeedbackJoiner:
    def __init__(self, state: StateStore, ttl_s: float) -> None:
        self._state = state
        self._ttl_s = ttl_s

    @staticmethod
    def _key(model: str, request_id: str) -> str:
        return f"mitiga:pred:{model}:{request_id}"

    def remember(self, model: str, request_id: str, version: str, inputs: FloatArray, outputs: FloatArray,
                 when: str) -> None:
        self.remember_many([(model, request_id, version, inputs, outputs, when)])

    def remember_many(self, predictions: list[tuple[str, str, str, FloatArray, FloatArray, str]]) -> None:
        """Keep predictions until their feedback arrives: (model, request id, version, inputs, outputs, when)."""
        items = {self._key(model, request_id): json.dumps({
            "v": version, "t": when, "x": np.asarray(inputs, np.float64).tolist(),
            "y": np.asarray(outputs, np.float64).tolist()}).encode()
            for model, request_id, version, inputs, outputs, when in predictions}
        self._state.set_many(items, ttl_s=self._ttl_s)

    def take(self, model: str, request_id: str, staged: StagedWrites) -> StoredPrediction | None:
        """The stored prediction, removed by a staged delete (applied with the consumer's next checkpoint)."""
        key = self._key(model, request_id)
        raw = staged.get(key, self._state)
        if raw is None:
            return None
        staged.delete(key)
        body = json.loads(raw)
        return StoredPrediction(str(body["v"]), np.asarray(body["x"], np.float32), np.asarray(body["y"], np.float32),
                                str(body["t"]))


class ErrorStreamDetector:
    """river's ADWIN or Page-Hinkley on the absolute-error stream: a change in the error level is concept drift."""

    def __init__(self, kind: Literal["adwin", "page_hinkley", "none"]) -> None:
        from river import drift

        self._detector = None if kind == "none" else (drift.ADWIN() if kind == "adwin" else drift.PageHinkley())
        self.alarms = 0

    def update(self, abs_errors: AnyArray) -> bool:
        if self._detector is None:
            return False
        changed = False
        for value in abs_errors:
            self._detector.update(float(value))
            changed = changed or bool(self._detector.drift_detected)
        self.alarms += int(changed)
        return changed

    def replay(self, abs_errors: AnyArray) -> None:
        """Feed errors seen before a restart: the detector regains its reference level; its alarms are not news."""
        if self._detector is not None:
            for value in abs_errors:
                self._detector.update(float(value))


class PerformanceWindow:
    """The most recent labelled rows of one model version."""

    def __init__(self, size: int, concept: Literal["adwin", "page_hinkley", "none"]) -> None:
        self._truth: deque[AnyArray] = deque(maxlen=size)
        self._pred: deque[AnyArray] = deque(maxlen=size)
        self.errors = ErrorStreamDetector(concept)
        self.concept_alarm = False

    def __len__(self) -> int:
        return len(self._truth)

    def add(self, truth: FloatArray, pred: FloatArray, scaler: Scaler) -> None:
        for t, p in zip(truth, pred, strict=True):
            self._truth.append(t)
            self._pred.append(p)
        abs_scaled = np.abs(scaler.transform(truth) - scaler.transform(pred)).mean(axis=1)
        if self.errors.update(abs_scaled):
            self.concept_alarm = True

    def snapshot(self) -> dict[str, Any]:
        """The labelled rows as JSON-ready data."""
        return {"truth": [np.asarray(t).tolist() for t in self._truth],
                "pred": [np.asarray(p).tolist() for p in self._pred]}

    def restore(self, data: dict[str, Any], scaler: Scaler) -> None:
        """Take back the rows of a snapshot, and rebuild the error-stream detector by replaying their errors (its
        own state is not JSON), so a change right after a restart is still measured against the level before."""
        self._truth.extend(np.asarray(t, np.float32) for t in data["truth"])
        self._pred.extend(np.asarray(p, np.float32) for p in data["pred"])
        if self._truth:
            truth, pred = np.stack(self._truth), np.stack(self._pred)
            self.errors.replay(np.abs(scaler.transform(truth) - scaler.transform(pred)).mean(axis=1))

    def metrics(self, scaler: Scaler) -> dict[str, dict[str, float]]:
        """MAE, MSE, RMSE, R² in ``original`` units and in the model's ``scaled`` units."""
        if not self._truth:
            return {}
        truth, pred = np.stack(self._truth), np.stack(self._pred)
        return {"original": regression_metrics(truth, pred),
                "scaled": regression_metrics(scaler.transform(truth), scaler.transform(pred))}
