"""Univariate two-sample drift tests, per feature, with a multiple-test correction.

Two engines give the same answers:

- ``alibi`` (default): Alibi Detect's ``KSDrift``, ``CVMDrift`` and ``ChiSquareDrift``. alibi-detect >= 0.12 is
  licensed BSL 1.1, which is not open source for production use.
- ``scipy``: ``scipy.stats.ks_2samp``, ``cramervonmises_2samp`` and ``chi2_contingency`` (BSD-3), permissively
  licensed, with the same corrections.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:
    from mitiga_core.types import AnyArray, FloatArray

TestName = Literal["ks", "cvm", "chi2"]
Correction = Literal["bonferroni", "fdr"]


@dataclass(frozen=True)
class UnivariateResult:
    p_values: AnyArray
    statistics: AnyArray
    drifted: AnyArray
    """Per feature, after the correction."""
    is_drift: bool
    threshold: float


def corrected(p_values: AnyArray, p_val: float, correction: Correction) -> tuple[bool, AnyArray, float]:
    """Dataset flag, per-feature flags and the effective threshold (Bonferroni, or Benjamini-Hochberg FDR)."""
    n = len(p_values)
    if correction == "bonferroni" or n == 1:
        threshold = p_val / n
        flags = p_values < threshold
        return bool(flags.any()), flags, threshold
    ranked = np.sort(p_values)
    below = ranked < p_val * (np.arange(n) + 1) / n
    if not below.any():
        return False, np.zeros(n, bool), float(p_val / n)
    threshold = float(p_val * (np.where(below)[0].max() + 1) / n)
    return True, p_values <= threshold, threshold


class UnivariateEngine(abc.ABC):
    def __init__(self, reference: FloatArray, *, test: TestName, p_val: float, correction: Correction) -> None:
        self.reference = np.asarray(reference, np.float64).reshape(len(reference), -1)
        self.test = test
        self.p_val = p_val
        self.correction = correction

    @abc.abstractmethod
    def run(self, x: FloatArray) -> UnivariateResult:
        """Test ``x`` (rows x features) against the reference."""


class AlibiEngine(UnivariateEngine):
    def __init__(self, reference: FloatArray, *, test: TestName, p_val: float, correction: Correction) -> None:
        super().__init__(reference, test=test, p_val=p_val, correction=correction)
        from alibi_detect.cd import ChiSquareDrift, CVMDrift, KSDrift

        ref = self.reference.astype(np.float32)
        if test == "ks":
            self._detector = KSDrift(ref, p_val=p_val, correction=correction)
        elif test == "cvm":
            self._detector = CVMDrift(ref, p_val=p_val, correction=correction)
        else:
            self._detector = ChiSquareDrift(ref, p_val=p_val, correction=correction)

    def run(self, x: FloatArray) -> UnivariateResult:
        data = self._detector.predict(np.asarray(x, np.float32).reshape(len(x), -1), drift_type="batch",
                                      return_p_val=True, return_distance=True)["data"]
        p_values = np.asarray(data["p_val"], np.float64).reshape(-1)
        _, flags, threshold = corrected(p_values, self.p_val, self.correction)
        return UnivariateResult(p_values, np.asarray(data["distance"], np.float64).reshape(-1), flags,
                                bool(data["is_drift"]), threshold)


class ScipyEngine(UnivariateEngine):
    def run(self, x: FloatArray) -> UnivariateResult:
        from scipy import stats

        current = np.asarray(x, np.float64).reshape(len(x), -1)
        p_values, statistics = [], []
        for j in range(self.reference.shape[1]):
            ref, cur = self.reference[:, j], current[:, j]
            if self.test == "ks":
                result = stats.ks_2samp(ref, cur, alternative="two-sided", method="asymp")  # as Alibi computes it
                p, s = result.pvalue, result.statistic
            elif self.test == "cvm":
                result = stats.cramervonmises_2samp(ref, cur)
                p, s = result.pvalue, result.statistic
            else:
                categories = np.unique(np.concatenate([ref, cur]))
                table = np.array([[np.sum(ref == c) for c in categories], [np.sum(cur == c) for c in categories]])
                s, p, _, _ = stats.chi2_contingency(table)
            p_values.append(float(p))
            statistics.append(float(s))
        pv = np.asarray(p_values)
        is_drift, flags, threshold = corrected(pv, self.p_val, self.correction)
        return UnivariateResult(pv, np.asarray(statistics), flags, is_drift, threshold)


def make_engine(engine: Literal["alibi", "scipy"], reference: FloatArray, *, test: TestName, p_val: float,
                correction: Correction) -> UnivariateEngine:
    cls: type[UnivariateEngine] = AlibiEngine if engine == "alibi" else ScipyEngine
    return cls(reference, test=test, p_val=p_val, correction=correction)
