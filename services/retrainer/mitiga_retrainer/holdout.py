"""The gate's holdout: which labelled rows the challenger never trains on, and whether they can be trusted.

The holdout is drawn across the recent period, not only from its newest rows: the newest ``spread x holdout_rows``
rows are the recent period. The model's task says how (``mitiga_core.tasks.holdout``): contiguous blocks spread
evenly over it for series and regressions, a stratified draw for classifiers. The rows in between stay available
for training, so the challenger also learns from the latest data it is not scored on.

A holdout that one request or one burst dominates can choose the promoted model (whoever sent it picks the ground
truth the gate believes). ``concentration`` measures it among the holdout's production rows (the model's own
training data is trusted): the largest share that come from one source request, and the largest share that carry
one and the same data time. The gate refuses a challenger when either is above ``max_share``. Where ground truth
comes from several label sources (one feedback token each), a source that gave more than ``max_source_share`` of
those rows must not decide alone: the challenger must also win without them; a source under that share moves the
holdout's error by at most its share of the rows (bound and test: ``tests/security/test_label_sources.py``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
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
    origins = None if data.origins is None else data.origins[mask]
    return TrainingData(data.x[mask], data.y[mask], data.dates[mask], sources, origins)


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
    sources: dict[str, int] = field(default_factory=dict)
    """Production rows per label source (the feedback token's name; '' for ground truth that came without one)."""

    def worst(self) -> float:
        return max(self.top_request_share, self.top_time_share)

    @property
    def top_source(self) -> tuple[str, float]:
        """The named label source that gave the most production rows, and its share of them; ('', 0) unless the
        holdout's ground truth comes from two named sources or more (one source alone is the model's only labeller,
        trusted as such)."""
        named = {name: n for name, n in self.sources.items() if name}
        if len(named) < 2:
            return "", 0.0
        name = max(named, key=lambda k: named[k])
        return name, named[name] / sum(self.sources.values())


TRUSTED = "training-"
"""Source prefix of the rows of the model's own training data (``strategies.combine``), which no client sent."""


def concentration(holdout: TrainingData) -> Concentration:
    """Among the holdout's production rows (what clients sent; the training data is trusted), the largest share
    from one request and the largest share with one data time."""
    n = len(holdout.dates)
    requests = [f"row-{i}" for i in range(n)] if holdout.sources is None else [str(s) for s in holdout.sources]
    origins = [""] * n if holdout.origins is None else [str(o) for o in holdout.origins]
    rows = [(r, str(d), o) for r, d, o in zip(requests, holdout.dates, origins, strict=True)
            if not r.startswith(TRUSTED)]
    if not rows:
        return Concentration(requests=0, top_request_share=0.0, top_time_share=0.0)
    by_request, by_time = Counter(r for r, _, _ in rows), Counter(d for _, d, _ in rows)
    return Concentration(requests=len(by_request), top_request_share=max(by_request.values()) / len(rows),
                         top_time_share=max(by_time.values()) / len(rows),
                         sources=dict(Counter(o for _, _, o in rows)))
