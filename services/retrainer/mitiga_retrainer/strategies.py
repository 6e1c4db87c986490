"""Training-set strategies (Poenaru-Olaru et al., as the research cites them).

- ``full_history``: the original training data plus every labelled production row; the set only grows.
- ``sliding_window``: abrupt forgetting; only the most recent ``window_rows`` rows (or ``window_days`` days).
- ``gradual_forgetting``: every row, weighted by ``0.5 ** (age / half_life)``, age counted in rows from the newest.

Rows are ordered by their date; the gate's holdout (``holdout.py``) is set aside before a strategy applies and is
never trained on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING, Literal

import numpy as np

from mitiga_retrainer.holdout import TRUSTED

if TYPE_CHECKING:
    from mitiga_core.bundle import TrainingData
    from mitiga_core.types import AnyArray, FloatArray

Strategy = Literal["full_history", "sliding_window", "gradual_forgetting"]


@dataclass(frozen=True)
class TrainingSet:
    x: FloatArray
    y: FloatArray
    weights: FloatArray
    dates: AnyArray

    @property
    def start(self) -> str:
        return str(self.dates[0])

    @property
    def end(self) -> str:
        return str(self.dates[-1])

    def __len__(self) -> int:
        return len(self.x)


def combine(original: TrainingData, production: TrainingData | None) -> TrainingData:
    """Original and production rows in date order (a stable sort keeps same-day rows in arrival order)."""
    from mitiga_core.bundle import TrainingData

    def sources(data: TrainingData, prefix: str) -> AnyArray:
        # each row of the original training data (trusted: no client sent it) is a source of its own
        return data.sources if data.sources is not None else np.asarray([f"{prefix}{i}" for i in range(len(data.x))])

    def origins(data: TrainingData) -> AnyArray:
        return data.origins if data.origins is not None else np.asarray([""] * len(data.x))

    if production is None or len(production.x) == 0:
        return TrainingData(original.x, original.y, original.dates, sources(original, TRUSTED), origins(original))
    dates = np.concatenate([np.asarray(original.dates, str), np.asarray(production.dates, str)])
    order = np.argsort(dates, kind="stable")
    return TrainingData(x=np.concatenate([original.x, production.x])[order],
                        y=np.concatenate([original.y, production.y])[order], dates=dates[order],
                        sources=np.concatenate([sources(original, TRUSTED),
                                                sources(production, "production-")])[order],
                        origins=np.concatenate([origins(original), origins(production)])[order])


def build_training_set(
    data: TrainingData,
    strategy: Strategy,
    *,
    window_rows: int | None = None,
    window_days: int | None = None,
    half_life: float | None = None,
    min_rows: int = 10,
) -> TrainingSet:
    """Apply ``strategy`` to date-ordered rows; raises ValueError when its options are wrong or data too little."""
    x, y, dates = data.x, data.y, np.asarray(data.dates, str)
    weights = np.ones(len(x), np.float32)
    if strategy == "sliding_window":
        if (window_rows is None) == (window_days is None):
            raise ValueError("sliding_window needs exactly one of window_rows and window_days")
        if window_rows is not None:
            if window_rows < 1:
                raise ValueError("window_rows must be positive")
            keep = slice(max(0, len(x) - window_rows), len(x))
            x, y, dates, weights = x[keep], y[keep], dates[keep], weights[keep]
        else:
            if window_days is None or window_days < 1:
                raise ValueError("window_days must be positive")
            newest = date.fromisoformat(str(dates[-1])[:10])
            first = (newest - timedelta(days=window_days - 1)).isoformat()
            mask = np.asarray([str(d)[:10] >= first for d in dates])
            x, y, dates, weights = x[mask], y[mask], dates[mask], weights[mask]
    elif strategy == "gradual_forgetting":
        if half_life is None or half_life <= 0:
            raise ValueError("gradual_forgetting needs a positive half_life (in rows)")
        age = np.arange(len(x) - 1, -1, -1, dtype=np.float64)
        weights = (0.5 ** (age / half_life)).astype(np.float32)
    elif strategy != "full_history":
        raise ValueError(f"unknown strategy {strategy!r}; use full_history, sliding_window or gradual_forgetting")
    if len(x) < min_rows:
        raise ValueError(f"{strategy} leaves {len(x)} rows to train on; at least {min_rows} are needed")
    return TrainingSet(x=x, y=y, weights=weights, dates=dates)
