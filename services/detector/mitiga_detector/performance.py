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

from mitiga_core.labelled import decode_record, encode_record
from mitiga_detector.evidence import Mean

if TYPE_CHECKING:
    from mitiga_core.bundle import ModelManifest
    from mitiga_core.state import StagedWrites, StateStore
    from mitiga_core.tasks import Task
    from mitiga_core.types import AnyArray, FloatArray


@dataclass(frozen=True)
class StoredPrediction:
    version: str
    inputs: FloatArray
    outputs: FloatArray
    when: str
    """The request's date (its ``data_time`` when given), ISO 8601."""


@dataclass(frozen=True)
class Prediction:
    """A prediction to keep until its ground truth arrives."""

    model: str
    request_id: str
    version: str
    inputs: FloatArray
    outputs: FloatArray
    when: str
    event_id: str


@dataclass(frozen=True)
class Remembered:
    refused: list[str]
    """The model of each prediction not stored: another request of the model holds its id."""
    evicted: dict[str, int]
    """Per model, how many older predictions were evicted to keep it within its bounds."""


class FeedbackJoiner:
    def __init__(self, state: StateStore, ttl_s: float, max_items: int = 100_000,
                 max_bytes: int = 32 * 1024 * 1024) -> None:
        self._state = state
        self._ttl_s = ttl_s
        self._max_items = max_items
        self._max_bytes = max_bytes

    @staticmethod
    def _key(model: str, request_id: str) -> str:
        return f"mitiga:pred:{model}:{request_id}"

    def remember_many(self, predictions: list[Prediction]) -> Remembered:
        """Keep predictions until their feedback arrives, at most ``max_items`` and ``max_bytes`` per model (the
        oldest are evicted). A stored prediction is never overwritten: a request id another event of the model
        already holds is refused, so ground truth always joins the request it was sent for (a redelivery of the same
        event is not a refusal)."""
        by_model: dict[str, dict[str, bytes]] = {}
        models = []
        for p in predictions:
            key = self._key(p.model, p.request_id)
            items = by_model.setdefault(p.model, {})
            if key in items:  # the same id twice in one batch: the first keeps it
                models.append(p.model)
                continue
            items[key] = encode_record(p.inputs, p.outputs, p.when, v=p.version, e=p.event_id)  # float32, short header
        refused: set[str] = set()
        evicted: dict[str, int] = {}
        for model, items in by_model.items():
            done = self._state.set_bounded(f"mitiga:pred-index:{model}", items, ttl_s=self._ttl_s,
                                           max_items=self._max_items, max_bytes=self._max_bytes)
            refused.update(done.refused)
            if done.evicted:
                evicted[model] = len(done.evicted)
        for p in predictions:
            key = self._key(p.model, p.request_id)
            if key in refused:
                refused.discard(key)
                held = self._state.get(key)
                if held is None or decode_record(held).meta.get("e") != p.event_id:
                    models.append(p.model)
        return Remembered(models, evicted)

    def take(self, model: str, request_id: str, staged: StagedWrites) -> StoredPrediction | None:
        """The stored prediction, removed by a staged delete (applied with the consumer's next checkpoint)."""
        key = self._key(model, request_id)
        raw = staged.get(key, self._state)
        if raw is None:
            return None
        staged.delete(key)
        if raw[:1] == b"{":  # stored as JSON by an earlier version
            body = json.loads(raw)
            return StoredPrediction(str(body["v"]), np.asarray(body["x"], np.float32),
                                    np.asarray(body["y"], np.float32), str(body["t"]))
        record = decode_record(raw)
        return StoredPrediction(record.meta.get("v", ""), record.x, record.y, record.when)


class ErrorStreamDetector:
    """river's ADWIN or Page-Hinkley on the per-row error stream (the task's ``error_stream``: the scaled absolute
    error, whether a classifier's predicted class was wrong): a rise in the error level is concept drift. Only rises
    count: an error that falls (the world came back, or a better model) is good news, not an alarm; and so does a
    rise after which the recent rows (the last ``recent``) are not measurably worse than ``floor``, the model's own
    error on its held-out rows (upper bound): the lower bound of their mean at ``z`` must pass it
    (:mod:`mitiga_detector.evidence`). An easy week followed by an ordinary one is not a model getting worse."""

    def __init__(self, kind: Literal["adwin", "page_hinkley", "none"], floor: float = 0.0, *, z: float = 0.0,
                 recent: int = 100) -> None:
        from river import drift

        self._detector: Any = None
        if kind == "adwin":
            self._detector = drift.ADWIN()
        elif kind == "page_hinkley":
            self._detector = drift.PageHinkley(mode="up")
        self.floor, self._z = floor, z
        self._recent: deque[float] = deque(maxlen=recent)
        self.alarms = 0

    def update(self, abs_errors: AnyArray) -> bool:
        if self._detector is None:
            return False
        rose = False
        adwin = hasattr(self._detector, "estimation")
        for value in abs_errors:
            before = self._detector.estimation if adwin else 0.0
            self._detector.update(float(value))
            self._recent.append(float(value))
            if self._detector.drift_detected:  # ADWIN dropped its older part: is the recent level higher?
                rose = rose or not adwin or self._detector.estimation > before
        if not rose:
            return False
        level = Mean.of(np.fromiter(self._recent, np.float64))
        changed = level.value - self._z * (level.se if np.isfinite(level.se) else 0.0) > self.floor
        self.alarms += int(changed)
        return changed

    def replay(self, abs_errors: AnyArray) -> None:
        """Feed errors seen before a restart: the detector regains its reference level; its alarms are not news."""
        if self._detector is not None:
            for value in abs_errors:
                self._detector.update(float(value))
                self._recent.append(float(value))


class PerformanceWindow:
    """The most recent labelled rows of one model version."""

    def __init__(self, size: int, concept: Literal["adwin", "page_hinkley", "none"], floor: float = 0.0,
                 z: float = 0.0) -> None:
        self._truth: deque[AnyArray] = deque(maxlen=size)
        self._pred: deque[AnyArray] = deque(maxlen=size)
        self._estimated: deque[float] = deque(maxlen=size)
        """Each labelled row's error as the loss estimator saw it before the label (when there is one)."""
        self._naive: deque[AnyArray] = deque(maxlen=size)
        """Forecast models: the naive forecast of each labelled row (its newest input, "tomorrow = today")."""
        self.errors = ErrorStreamDetector(concept, floor, z=z, recent=size)
        self.concept_alarm = False
        self.total = 0
        """Labelled rows ever added (the window keeps the newest): how much new evidence came since a moment."""

    def __len__(self) -> int:
        return len(self._truth)

    def add(self, truth: FloatArray, pred: FloatArray, manifest: ModelManifest, estimated: FloatArray | None = None,
            naive: FloatArray | None = None) -> None:
        for t, p in zip(truth, pred, strict=True):
            self._truth.append(t)
            self._pred.append(p)
        self.total += len(truth)
        if naive is not None:
            self._naive.extend(np.asarray(naive, np.float32))
        if estimated is not None:
            self._estimated.extend(float(e) for e in estimated)
        if self.errors.update(manifest.kind.error_stream(manifest, truth, pred)):
            self.concept_alarm = True

    def snapshot(self) -> dict[str, Any]:
        """The labelled rows as JSON-ready data."""
        return {"truth": [np.asarray(t).tolist() for t in self._truth],
                "pred": [np.asarray(p).tolist() for p in self._pred], "estimated": list(self._estimated),
                "naive": [np.asarray(n).tolist() for n in self._naive], "total": self.total}

    def restore(self, data: dict[str, Any], manifest: ModelManifest) -> None:
        """Take back the rows of a snapshot, and rebuild the error-stream detector by replaying their errors (its
        own state is not JSON), so a change right after a restart is still measured against the level before."""
        self._truth.extend(np.asarray(t, np.float32) for t in data["truth"])
        self._pred.extend(np.asarray(p, np.float32) for p in data["pred"])
        self._estimated.extend(float(e) for e in data.get("estimated", []))
        self._naive.extend(np.asarray(n, np.float32) for n in data.get("naive", []))
        self.total = int(data.get("total", len(self._truth)))
        if self._truth:
            truth, pred = np.stack(self._truth), np.stack(self._pred)
            self.errors.replay(manifest.kind.error_stream(manifest, truth, pred))

    def estimate_error(self, task: Task) -> float | None:
        """The estimate before labels minus what the labels say, on the labelled rows, when every row had an
        estimate: the task's estimated metric (MAE in original units; a classifier's error rate)."""
        if not self._truth or len(self._estimated) != len(self._truth):
            return None
        realised = task.row_estimand(np.stack(self._truth), np.stack(self._pred))
        return float(np.mean(self._estimated) - realised.mean())

    def ratio_rows(self, manifest: ModelManifest) -> dict[str, AnyArray]:
        """The labelled rows' shares of the ratio metrics (``Task.ratio_rows``), in original units."""
        if not self._truth:
            return {}
        return manifest.kind.ratio_rows(manifest, np.stack(self._truth), np.stack(self._pred))

    def skill(self) -> float | None:
        """MAE over the naive forecast's MAE on the same labelled rows (forecast models; below 1 beats naive)."""
        if not self._truth or len(self._naive) != len(self._truth):
            return None
        truth, pred, naive = np.stack(self._truth), np.stack(self._pred), np.stack(self._naive)
        baseline = float(np.abs(truth - naive).mean())
        return float(np.abs(truth - pred).mean()) / baseline if baseline > 0 else None

    def confusion(self, manifest: ModelManifest) -> list[list[int]] | None:
        """A classifier's confusion matrix on the labelled rows (true class by row, predicted by column)."""
        if not self._truth:
            return None
        return manifest.kind.confusion(np.stack(self._truth), np.stack(self._pred))

    def metrics(self, manifest: ModelManifest) -> dict[str, dict[str, float]]:
        """The task's metrics (MAE, MSE, RMSE, R²; accuracy, F1, log loss...) in ``original`` units and in the
        model's ``scaled`` units."""
        if not self._truth:
            return {}
        return manifest.kind.metrics(manifest, np.stack(self._truth), np.stack(self._pred))
