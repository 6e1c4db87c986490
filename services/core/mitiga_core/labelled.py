"""Labelled production data: inputs joined with their ground truth, kept per model in the state store.

The detector appends a record for every prediction whose feedback it joins; the retrainer reads them back as
training rows. Records are JSON: ``{"x": rows, "y": rows, "t": ISO date}``, one per joined request.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np

from mitiga_core.bundle import TrainingData
from mitiga_core.state.base import Write

if TYPE_CHECKING:
    from mitiga_core.state import StateStore
    from mitiga_core.types import FloatArray


def _key(model: str) -> str:
    return f"mitiga:labelled:{model}"


class LabelledLog:
    def __init__(self, state: StateStore, max_requests: int = 2000) -> None:
        self._state = state
        self._max = max_requests

    def append(self, model: str, x: FloatArray, y: FloatArray, when: str) -> None:
        self._state.apply([self.write(model, x, y, when)])

    def write(self, model: str, x: FloatArray, y: FloatArray, when: str) -> Write:
        """The append as a write, for a caller that applies it together with other writes."""
        record = {"x": np.asarray(x, np.float64).tolist(), "y": np.asarray(y, np.float64).tolist(), "t": when}
        return Write("append", _key(model), json.dumps(record).encode(), max_items=self._max)

    def read(self, model: str, *, start: str | None = None, end: str | None = None) -> TrainingData | None:
        """Rows whose date lies in [start, end] (ISO strings, inclusive), oldest first; None when there are none."""
        xs, ys, dates = [], [], []
        for raw in self._state.items(_key(model)):
            record = json.loads(raw)
            day = str(record["t"])
            if (start and day[: len(start)] < start) or (end and day[: len(end)] > end):
                continue
            x = np.asarray(record["x"], np.float32)
            xs.append(x)
            ys.append(np.asarray(record["y"], np.float32).reshape(len(x), -1))
            dates.extend([day] * len(x))
        if not xs:
            return None
        return TrainingData(x=np.concatenate(xs), y=np.concatenate(ys), dates=np.asarray(dates))
