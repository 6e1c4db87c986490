"""Windows of recent inputs and outputs per model version, closed by count or by event time."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from mitiga_core.types import FloatArray  # noqa: TC001


@dataclass
class Window:
    features: FloatArray
    outputs: FloatArray
    start: datetime
    end: datetime
    alarms: frozenset[str] = frozenset()
    """Row-level detectors (``online``, ``sequential``) that alarmed on its rows."""

    def __len__(self) -> int:
        return len(self.features)


def _packed(rows: FloatArray) -> dict[str, Any]:
    return {"shape": list(rows.shape), "f32": base64.b64encode(np.ascontiguousarray(rows, "<f4").tobytes()).decode()}


def _unpacked(data: list[Any] | dict[str, Any]) -> FloatArray:
    """Rows packed by :func:`_packed`, or as JSON numbers (checkpoints written before)."""
    if isinstance(data, dict):
        return np.frombuffer(base64.b64decode(data["f32"]), "<f4").astype(np.float32).reshape(data["shape"])
    return np.asarray(data, np.float32)


@dataclass
class WindowBuffer:
    size: int
    seconds: float
    min_rows: int
    _features: list[FloatArray] = field(default_factory=list)
    _outputs: list[FloatArray] = field(default_factory=list)
    _rows: int = 0
    _start: datetime | None = None
    _end: datetime | None = None

    def add(self, features: FloatArray, outputs: FloatArray, when: datetime) -> Window | None:
        """Add rows; returns the closed window when this addition closes one."""
        self._features.append(features)
        self._outputs.append(outputs)
        self._rows += len(features)
        self._start = when if self._start is None else min(self._start, when)
        self._end = when if self._end is None else max(self._end, when)
        span = (self._end - self._start).total_seconds()
        if self._rows >= self.size or (self.seconds > 0 and span >= self.seconds and self._rows >= self.min_rows):
            return self._take()
        return None

    def close(self) -> Window | None:
        """Close the open window now, if it holds ``min_rows`` (a row-level detector alarmed)."""
        return self._take() if self._rows >= self.min_rows else None

    def _take(self) -> Window:
        assert self._start is not None and self._end is not None
        window = Window(np.concatenate(self._features), np.concatenate(self._outputs), self._start, self._end)
        self._features, self._outputs, self._rows, self._start, self._end = [], [], 0, None, None
        return window

    @property
    def rows(self) -> int:
        return self._rows

    def snapshot(self) -> dict[str, Any]:
        """The open window as JSON-ready data (for checkpoints); the rows as base64 float32, a tenth of the time
        of JSON numbers (a detector with many models writes an open window per event)."""
        if not self._rows:
            return {}
        assert self._start is not None and self._end is not None
        return {"features": _packed(np.concatenate(self._features)), "outputs": _packed(np.concatenate(self._outputs)),
                "start": self._start.isoformat(), "end": self._end.isoformat()}

    def restore(self, data: dict[str, Any]) -> None:
        if not data:
            return
        features = _unpacked(data["features"])
        self._features, self._outputs = [features], [_unpacked(data["outputs"])]
        self._rows = len(features)
        self._start, self._end = datetime.fromisoformat(data["start"]), datetime.fromisoformat(data["end"])
