"""A sequential per-feature change test that can alarm on any row, not only when a window closes.

Each feature is mapped to normal scores through the reference's empirical distribution
(``z = Φ⁻¹(F_ref(x))``), so whatever a feature's shape, its in-control scores are close to N(0, 1). Two-sided CUSUM
statistics then run on every feature's scores and on their standardised sum (which catches a small shift of many
features at once), each with several reference values ``k`` (small shifts and large ones).

The alarm threshold ``h`` is set from the expected run length between false alarms (``arl``, in rows) with
Siegmund's approximation ``ARL₀ ≈ (e^{2kb} - 2kb - 1) / (2k²)``, ``b = h + 1.166``, and a union bound over the
statistics; no simulation is needed, so the "calibration" of a model version costs microseconds. Only numpy and
scipy are used (BSD-3), so this test is available with either engine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import optimize, special

if TYPE_CHECKING:
    from collections.abc import Sequence

    from mitiga_core.types import AnyArray, FloatArray


def cusum_threshold(k: float, arl: float) -> float:
    """The one-sided CUSUM threshold ``h`` whose in-control run length is ``arl`` rows (Siegmund)."""

    def excess(h: float) -> float:
        b = 2 * k * (h + 1.166)
        log_run = b if b > 30 else np.log(np.expm1(b) - b)  # e^b dominates past 30
        return float(log_run - np.log(2 * k * k) - np.log(arl))

    return float(optimize.brentq(excess, 0.01, 1000.0))


class SequentialDetector:
    """Two-sided CUSUMs on per-feature normal scores and on their standardised sum."""

    def __init__(self, reference: FloatArray, *, arl: float = 50_000.0, ks: Sequence[float] = (0.25, 0.75),
                 sorted_reference: FloatArray | None = None) -> None:
        """``sorted_reference``: the reference sorted by column, when the caller holds it (it is kept, not copied)."""
        ref = np.asarray(reference).reshape(len(reference), -1)
        self._sorted = np.sort(ref, axis=0) if sorted_reference is None else sorted_reference
        self._n = len(ref)
        scores = self._scores(ref)
        self._sum_scale = float(np.std(scores.sum(axis=1))) or 1.0
        self._ks = np.asarray(ks, np.float64)
        statistics = 2 * (ref.shape[1] + 1) * len(self._ks)  # upward and downward, per column and for the sum
        self._h = np.asarray([cusum_threshold(k, arl * statistics) for k in self._ks])
        self._up = np.zeros((len(self._ks), ref.shape[1] + 1))
        self._down = np.zeros_like(self._up)
        self.alarms = 0

    def _scores(self, x: AnyArray) -> AnyArray:
        """Normal scores of each value against its column of the reference (mid-ranks, so ties sit in the middle)."""
        columns = []
        for j in range(self._sorted.shape[1]):
            lo = np.searchsorted(self._sorted[:, j], x[:, j], side="left")
            hi = np.searchsorted(self._sorted[:, j], x[:, j], side="right")
            columns.append((lo + hi) / 2 + 0.5)
        return np.asarray(special.ndtri(np.column_stack(columns) / (self._n + 1)), np.float64)  # Φ⁻¹, as a ufunc

    def update(self, rows: FloatArray) -> list[int]:
        """Feed rows in order; the indexes of the rows that alarm (after each, every statistic restarts).

        The CUSUM recursion ``S_t = max(0, S_{t-1} + x_t)`` is solved for all rows at once:
        ``S_t = C_t - min(-S_0, min_{s<=t} C_s)`` with ``C`` the running sum of ``x``; only an alarm splits the rows,
        so the rows of many events cost one call."""
        x = np.asarray(rows, np.float64).reshape(len(rows), -1)
        z = self._scores(x)
        z = np.column_stack([z, z.sum(axis=1) / self._sum_scale])
        k, h = self._ks[:, None, None], self._h[:, None, None]
        alarms: list[int] = []
        start = 0
        while start < len(z):
            up = self._cusum(z[None, start:] - k, self._up)
            down = self._cusum(-z[None, start:] - k, self._down)
            hits = ((up > h) | (down > h)).any(axis=(0, 2))
            if not hits.any():
                self._up, self._down = up[:, -1], down[:, -1]
                break
            at = start + int(np.argmax(hits))
            self.alarms += 1
            alarms.append(at)
            self.reset()
            start = at + 1
        return alarms

    @staticmethod
    def _cusum(increments: AnyArray, initial: AnyArray) -> AnyArray:
        """Every row's statistic (statistics x rows x columns) from the increments and the statistics before."""
        running = np.cumsum(increments, axis=1)
        return np.asarray(running - np.minimum(-initial[:, None, :], np.minimum.accumulate(running, axis=1)))

    def reset(self) -> None:
        self._up[:] = 0.0
        self._down[:] = 0.0

    def restart(self) -> None:
        """As new: statistics and the alarm count back to zero (the calibration stays)."""
        self.reset()
        self.alarms = 0

    def snapshot(self) -> dict[str, Any]:
        return {"up": self._up.tolist(), "down": self._down.tolist()}

    def restore(self, data: dict[str, Any]) -> None:
        if data and np.shape(data["up"]) == self._up.shape:
            self._up, self._down = np.asarray(data["up"], np.float64), np.asarray(data["down"], np.float64)
