"""The gate's holdout: which labelled rows the challenger never trains on, and whether they can be trusted.

The holdout is drawn across the recent period, not only from its newest rows: the newest ``spread x holdout_rows``
rows are the recent period, and ``blocks`` contiguous blocks spread evenly over it (the last one ending at the newest
row) become the holdout. Contiguous blocks keep neighbouring forecast windows together; the rows between the blocks
stay available for training, so the challenger also learns from the latest data it is not scored on.

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

if TYPE_CHECKING:
    from mitiga_core.bundle import TrainingData

BoolArray = np.ndarray[Any, np.dtype[np.bool_]]


def _take(data: TrainingData, mask: BoolArray) -> TrainingData:
    from mitiga_core.bundle import TrainingData

    sources = None if data.sources is None else data.sources[mask]
    return TrainingData(data.x[mask], data.y[mask], data.dates[mask], sources)


def holdout_mask(n: int, holdout_rows: int, *, spread: float = 3.0, blocks: int = 4) -> BoolArray:
    """True for the rows of the holdout among ``n`` date-ordered rows."""
    if holdout_rows < 1 or holdout_rows >= n:
        raise ValueError(f"holdout of {holdout_rows} rows needs at least {holdout_rows + 1} rows, got {n}")
    if spread < 1 or blocks < 1:
        raise ValueError("holdout spread must be at least 1 and blocks at least 1")
    recent = min(n - 1, max(holdout_rows, round(spread * holdout_rows)))
    sizes = [len(part) for part in np.array_split(np.arange(holdout_rows), min(blocks, holdout_rows))]
    gap = (recent - holdout_rows) / max(1, len(sizes) - 1) if len(sizes) > 1 else 0.0
    mask = np.zeros(n, bool)
    start = float(n - recent)
    for size in sizes:
        first = round(start)
        mask[first:first + size] = True
        start += size + gap
    mask[n - sizes[-1]:] = True  # the newest rows are always scored
    extra = int(mask.sum()) - holdout_rows  # rounding may add a row or two: give them back from the oldest block
    if extra > 0:
        mask[np.flatnonzero(mask)[:extra]] = False
    return mask


def split_holdout(data: TrainingData, holdout_rows: int, *, spread: float = 3.0,
                  blocks: int = 4) -> tuple[TrainingData, TrainingData]:
    """(rows that may be trained on, the gate's holdout), both in date order."""
    mask = holdout_mask(len(data.x), holdout_rows, spread=spread, blocks=blocks)
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
