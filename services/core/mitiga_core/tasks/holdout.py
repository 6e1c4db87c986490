"""Which date-ordered rows the gate holds out: contiguous blocks across the recent period (time order, for series
and regressions), or a stratified draw from it (classifiers: every class in its share). The recent period is the
newest ``spread x holdout_rows`` rows; rows between the held-out ones stay available for training."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from mitiga_core.types import AnyArray


def _recent(n: int, holdout_rows: int, spread: float) -> int:
    if holdout_rows < 1 or holdout_rows >= n:
        raise ValueError(f"holdout of {holdout_rows} rows needs at least {holdout_rows + 1} rows, got {n}")
    if spread < 1:
        raise ValueError("holdout spread must be at least 1")
    return min(n - 1, max(holdout_rows, round(spread * holdout_rows)))


def time_blocks(n: int, holdout_rows: int, *, spread: float = 3.0, blocks: int = 4) -> AnyArray:
    """True for ``blocks`` contiguous blocks spread evenly over the recent period, the last ending at the newest
    row. Contiguous blocks keep neighbouring forecast windows together."""
    recent = _recent(n, holdout_rows, spread)
    if blocks < 1:
        raise ValueError("holdout blocks must be at least 1")
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


def stratified(labels: AnyArray, holdout_rows: int, *, spread: float = 3.0) -> AnyArray:
    """True for ``holdout_rows`` rows of the recent period, each class taking its share of that period (at least
    one row for a class present there), evenly spaced within the class so that the newest rows are scored."""
    n = len(labels)
    recent = _recent(n, holdout_rows, spread)
    period = np.arange(n - recent, n)
    classes, counts = np.unique(labels[period], return_counts=True)
    quota = np.maximum(1, np.floor(counts / recent * holdout_rows)).astype(int)
    for i in np.argsort(-counts):  # the rows rounding left, to the largest classes first
        if quota.sum() >= holdout_rows:
            break
        quota[i] += min(holdout_rows - quota.sum(), counts[i] - quota[i])
    while quota.sum() > holdout_rows:  # more classes than rows: drop from the largest
        quota[np.argmax(quota)] -= 1
    mask = np.zeros(n, bool)
    for c, take in zip(classes, np.minimum(quota, counts), strict=True):
        rows = period[labels[period] == c]
        picks = np.unique(np.round(np.linspace(len(rows) - 1, 0, int(take))).astype(int))
        mask[rows[picks]] = True
    return mask
