"""The two-sample Kolmogorov-Smirnov test of a window's columns against a fixed reference, as ``scipy.stats.ks_2samp``
computes it with ``method="asymp"`` (which Alibi's ``KSDrift`` calls per feature), at a fraction of its cost.

``ks_2samp`` sorts the reference again for every window and then computes the p-value from the exact
finite-sample Kolmogorov distribution (``kstwo.sf``, Pomeranz's recursion for windows of a hundred rows): about a
millisecond a feature, most of a window's verdict (the detector's profile, docs/benchmarks.md, P4). Here the
reference is sorted once, the statistic is worked out with the same arithmetic as scipy's, and the p-value, a
function of the statistic and the sizes alone, is computed by scipy once per statistic and remembered: the
statistic takes few distinct values (multiples of ``1/lcm(n_ref, n_window)``), so windows soon find theirs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.stats import kstwo

if TYPE_CHECKING:
    from mitiga_core.types import AnyArray, FloatArray

MEMO_MAX = 65_536
"""P-values remembered (about 200 bytes each); past it the memo starts again."""
_P_VALUES: dict[tuple[float, float], float] = {}
"""The p-value of a statistic at an effective sample size, for every reference: a model's windows, and other models'
with the same sizes, find the p-values computed before."""


class KSReference:
    def __init__(self, reference: FloatArray) -> None:
        ref = np.asarray(reference).reshape(len(reference), -1)
        if len(ref) > 1 and not (np.diff(ref, axis=0) >= 0).all():
            ref = np.sort(ref, axis=0)
        self._sorted = ref.T  # a reference sorted by column already (the monitor's) is used as it is
        self._p = _P_VALUES

    def test(self, current: AnyArray) -> tuple[AnyArray, AnyArray]:
        """Each column's two-sided KS statistic and p-value against the reference (``ks_2samp``'s, ``asymp``)."""
        cur = np.sort(np.asarray(current).reshape(len(current), -1), axis=0).T
        n1, n2 = self._sorted.shape[1], cur.shape[1]
        if not n1 or not n2:
            raise ValueError("Data passed to ks_2samp must not be empty")
        d = np.empty(len(cur))
        for j, (data1, data2) in enumerate(zip(self._sorted, cur, strict=True)):
            data_all = np.concatenate([data1, data2])
            cddiffs = np.searchsorted(data1, data_all, side="right") / n1 - np.searchsorted(
                data2, data_all, side="right") / n2
            min_s, max_s = np.clip(-cddiffs.min(), 0, 1), cddiffs.max()
            d[j] = min_s if min_s > max_s else max_s
        m, n = sorted([float(n1), float(n2)], reverse=True)
        en = float(np.round(m * n / (m + n)))
        return d, self._p_values(d, en)

    def _p_values(self, d: AnyArray, en: float) -> AnyArray:
        known = {float(s): self._p.get((float(s), en)) for s in d}
        missing = sorted(s for s, p in known.items() if p is None)
        if missing:
            if len(self._p) + len(missing) > MEMO_MAX:
                self._p.clear()
            for s, p in zip(missing, np.clip(kstwo.sf(missing, en), 0, 1), strict=True):
                known[s] = self._p[(s, en)] = float(p)
        return np.asarray([known[float(s)] for s in d])


def alibi_ks(reference: FloatArray, **kwargs: Any) -> Any:
    """Alibi's ``KSDrift`` on ``reference``, its per-feature scores from :class:`KSReference` (the same numbers:
    ``tests/detector/test_kstest.py``); Alibi still does the correction, the thresholds and the answer."""
    from alibi_detect.cd import KSDrift

    class ReferenceKSDrift(KSDrift):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__(reference, **kwargs)
            self._reference = KSReference(self.x_ref)

        def feature_score(self, x_ref: AnyArray, x: AnyArray) -> tuple[AnyArray, AnyArray]:
            if x_ref is not self.x_ref or self.alternative != "two-sided":
                return super().feature_score(x_ref, x)
            d, p = self._reference.test(x.reshape(x.shape[0], -1))
            return p.astype(np.float32), d.astype(np.float32)

    return ReferenceKSDrift()
