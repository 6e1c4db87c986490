"""The gate's holdout: which labelled rows the challenger never trains on, and whether they can be trusted.

The holdout is drawn across the recent period, not only from its newest rows: the newest ``spread x holdout_rows``
rows are the recent period. The model's task says how (``mitiga_core.tasks.holdout``): contiguous blocks spread
evenly over it for series and regressions, a stratified draw for classifiers. The rows in between stay available
for training, so the challenger also learns from the latest data it is not scored on.

A holdout that one request or one burst dominates can choose the promoted model (whoever sent it picks the ground
truth the gate believes). ``concentration`` measures it among the holdout's production rows (the model's own
training data is trusted): the largest share that come from one source request, and the largest share that carry
one and the same data time. The gate refuses a challenger when either is above ``max_share``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mitiga_core.tasks.holdout import time_blocks

if TYPE_CHECKING:
    from mitiga_core.bundle import TrainingData
    from mitiga_core.tasks import Task

BoolArray = np.ndarray[Any, np.dtype[np.bool_]]


def _take(data: TrainingData, mask: BoolArray) -> TrainingData:
    from mitiga_core.bundle import TrainingData

    sources = None if data.sources is None else data.sources[mask]
    return TrainingData(data.x[mask], data.y[mask], data.dates[mask], sources)


def holdout_mask(n: int, holdout_rows: int, *, spread: float = 3.0, blocks: int = 4) -> BoolArray:
    """True for the rows of a time-ordered holdout among ``n`` date-ordered rows."""
    return time_blocks(n, holdout_rows, spread=spread, blocks=blocks)


def split_holdout(data: TrainingData, holdout_rows: int, *, spread: float = 3.0, blocks: int = 4,
                  task: Task | None = None) -> tuple[TrainingData, TrainingData]:
    """(rows that may be trained on, the gate's holdout), both in date order, cut as the model's ``task`` cuts a
    holdout (time order unless given one)."""
    if task is None:
        mask = holdout_mask(len(data.x), holdout_rows, spread=spread, blocks=blocks)
    else:
        mask = task.holdout_mask(data.y, holdout_rows, spread=spread, blocks=blocks)
    return _take(data, ~mask), _take(data, mask)


@dataclass(frozen=True)
class Concentration:
    requests: int
    """Distinct source requests in the holdout."""
    top_request_share: float
    top_time_share: float

    def worst(self) -> float:
        return max(self.top_request_share, self.top_time_share)


TRUSTED = "training-"
"""Source prefix of the rows of the model's own training data (``strategies.combine``), which no client sent."""


def concentration(holdout: TrainingData) -> Concentration:
    """Among the holdout's production rows (what clients sent; the training data is trusted), the largest share
    from one request and the largest share with one data time."""
    if holdout.sources is None:
        rows = [(f"row-{i}", str(d)) for i, d in enumerate(holdout.dates)]
    else:
        rows = [(str(s), str(d)) for s, d in zip(holdout.sources, holdout.dates, strict=True)
                if not str(s).startswith(TRUSTED)]
    if not rows:
        return Concentration(requests=0, top_request_share=0.0, top_time_share=0.0)
    sources, dates = Counter(s for s, _ in rows), Counter(d for _, d in rows)
    return Concentration(requests=len(sources), top_request_share=max(sources.values()) / len(rows),
                         top_time_share=max(dates.values()) / len(rows))
