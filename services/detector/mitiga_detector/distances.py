"""Per-feature distances between the reference and a window, with scipy: Wasserstein, Jensen-Shannon and PSI.

Jensen-Shannon and PSI use the same bins: deciles of the reference (so each reference bin holds about 10%),
open at both ends. PSI above 0.2 is the usual sign of a shift.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy.spatial.distance import jensenshannon
from scipy.stats import wasserstein_distance

if TYPE_CHECKING:
    from mitiga_core.types import AnyArray, FloatArray

EPS = 1e-4


def _shares(values: AnyArray, edges: AnyArray) -> AnyArray:
    counts = np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1)
    return counts / max(len(values), 1)


def reference_edges(reference: AnyArray, bins: int = 10) -> AnyArray:
    return np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))


def psi(ref_shares: AnyArray, cur_shares: AnyArray) -> float:
    r, c = np.clip(ref_shares, EPS, None), np.clip(cur_shares, EPS, None)
    return float(np.sum((c - r) * np.log(c / r)))


class ReferenceDistances:
    """The reference's side of the distances, worked out once per model version: each column's bins and shares."""

    def __init__(self, reference: FloatArray, bins: int = 10) -> None:
        self.reference = np.asarray(reference).reshape(len(reference), -1)  # the monitor's own array, not a copy
        self._edges, self._shares = [], []
        for column in self.reference.T:
            values = column.astype(np.float64)
            self._edges.append(reference_edges(values, bins))
            self._shares.append(_shares(values, self._edges[-1]))

    def of(self, current: FloatArray) -> dict[str, AnyArray]:
        """``wasserstein``, ``jensen_shannon`` (base 2, 0..1) and ``psi`` per column of ``current``."""
        cur = np.asarray(current, np.float64).reshape(len(current), -1)
        out: dict[str, list[float]] = {"wasserstein": [], "jensen_shannon": [], "psi": []}
        for j, (edges, r) in enumerate(zip(self._edges, self._shares, strict=True)):
            c = _shares(cur[:, j], edges)
            out["wasserstein"].append(float(wasserstein_distance(self.reference[:, j], cur[:, j])))
            out["jensen_shannon"].append(float(jensenshannon(r, c, base=2)))
            out["psi"].append(psi(r, c))
        return {k: np.asarray(v) for k, v in out.items()}


def feature_distances(reference: FloatArray, current: FloatArray) -> dict[str, AnyArray]:
    """``wasserstein``, ``jensen_shannon`` (base 2, 0..1) and ``psi`` per column."""
    return ReferenceDistances(reference).of(current)
