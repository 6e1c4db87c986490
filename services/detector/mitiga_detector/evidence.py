"""How far the rows behind a ratio support it.

A ratio signal (``error_rate_ratio``, ``log_loss_ratio``, ``mae_ratio``, ``estimated_error_rate_ratio``...) compares
an error measured on a few hundred recent rows with the model's own error on its held-out rows, often a few hundred
as well (a retrained model's gate holdout). Both are estimates: a champion whose holdout happened to be easy has a
low reference, and an ordinary week then reads as "1.5x worse", so the model is retrained again and again. The
detector therefore reports the ratio the evidence supports at ``ratio_confidence`` (one-sided): the recent error's
lower confidence bound over the reference's upper bound (normal approximation of each mean, from the rows' own
spread). With ``ratio_confidence`` 0.5 both bounds are the point values: the plain ratio.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from mitiga_core.bundle import ModelManifest
    from mitiga_core.types import AnyArray


@dataclass(frozen=True)
class Mean:
    """A mean of per-row values and its standard error."""

    value: float
    se: float

    @classmethod
    def of(cls, rows: AnyArray) -> Mean:
        values = np.asarray(rows, np.float64).reshape(-1)
        if values.size == 0:
            return cls(math.nan, math.nan)
        se = float(values.std(ddof=1) / math.sqrt(values.size)) if values.size > 1 else math.inf
        return cls(float(values.mean()), se)

    @classmethod
    def of_chances(cls, chances: AnyArray) -> Mean:
        """The share of rows that turn out wrong, when each row is wrong with its own chance (a classifier's
        calibrated confidence): its mean, and the spread of a sum of independent Bernoulli draws."""
        p = np.clip(np.asarray(chances, np.float64).reshape(-1), 0.0, 1.0)
        if p.size == 0:
            return cls(math.nan, math.nan)
        return cls(float(p.mean()), float(math.sqrt(float((p * (1 - p)).sum())) / p.size))


def z_score(confidence: float) -> float:
    """The one-sided normal quantile of ``confidence`` (0 at 0.5)."""
    return NormalDist().inv_cdf(confidence) if confidence > 0.5 else 0.0


def supported_ratio(recent: Mean, reference: Mean, z: float, *, root: bool = False) -> float:
    """The smallest ratio of ``recent`` over ``reference`` both means allow at ``z`` (a ratio of root-mean metrics,
    RMSE, when ``root``). A reference without a spread (no held-out rows in the bundle) counts as exact."""
    ref_se = reference.se if math.isfinite(reference.se) else 0.0
    low = max(recent.value - z * recent.se, 0.0) if math.isfinite(recent.se) else 0.0
    high = reference.value + z * ref_se
    if not (math.isfinite(low) and math.isfinite(high)) or high <= 0:
        return math.nan
    ratio = low / high
    return math.sqrt(ratio) if root else ratio


def reference_means(manifest: ModelManifest, truth: AnyArray | None, pred: AnyArray | None) -> dict[str, Mean]:
    """The model's own error on its held-out rows, per ratio metric: the value the bundle records
    (``val_<metric>``, else the gate's ``holdout_<metric>``), with the standard error of those rows' values (in the
    metric's row form: squared errors for RMSE). Without held-out rows, the recorded values count as exact."""
    kind = manifest.kind
    rows = kind.ratio_rows(manifest, truth, pred) if truth is not None and pred is not None and len(truth) else {}
    out = {}
    for metric, values in rows.items():
        found = Mean.of(values)
        recorded = manifest.training.reference_error(metric)
        if recorded is not None:
            mean = recorded**2 if metric in kind.root_metrics else recorded
            found = Mean(mean, found.se)
        out[metric] = found
    for metric in kind.ratio_metrics:
        recorded = manifest.training.reference_error(metric)
        if metric not in out and recorded is not None:
            out[metric] = Mean(recorded**2 if metric in kind.root_metrics else recorded, 0.0)
    return out
