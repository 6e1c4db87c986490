"""Univariate two-sample drift tests, per feature, with a multiple-test correction.

Two engines give the same answers:

- ``alibi`` (default): Alibi Detect's ``KSDrift`` (its per-feature KS from :mod:`~mitiga_detector.kstest`: the same
  numbers, the reference's side worked out once), ``CVMDrift`` and ``ChiSquareDrift``. alibi-detect >= 0.12 is
  licensed BSL 1.1, which is not open source for production use.
- ``scipy``: ``scipy.stats.ks_2samp``, ``cramervonmises_2samp`` and ``chi2_contingency`` (BSD-3), permissively
  licensed, with the same corrections.

Features the manifest declares ``categorical`` are always tested with χ², the others with the configured test; the
correction runs over all of them together.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from mitiga_detector.kstest import KSReference, alibi_ks

if TYPE_CHECKING:
    from collections.abc import Sequence

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
    def __init__(self, reference: FloatArray, *, test: TestName, p_val: float, correction: Correction,
                 categorical: Sequence[int] = ()) -> None:
        self.reference = np.asarray(reference).reshape(len(reference), -1)  # the monitor's own array, not a copy
        self.test = test
        self.p_val = p_val
        self.correction = correction
        self.categorical = sorted(set(categorical) | (set(range(self.reference.shape[1])) if test == "chi2" else set()))
        self.continuous = [j for j in range(self.reference.shape[1]) if j not in self.categorical]

    def test_of(self, column: int) -> TestName:
        return "chi2" if column in self.categorical else self.test

    @abc.abstractmethod
    def run(self, x: FloatArray) -> UnivariateResult:
        """Test ``x`` (rows x features) against the reference."""


class AlibiEngine(UnivariateEngine):
    def __init__(self, reference: FloatArray, *, test: TestName, p_val: float, correction: Correction,
                 categorical: Sequence[int] = ()) -> None:
        super().__init__(reference, test=test, p_val=p_val, correction=correction, categorical=categorical)
        from alibi_detect.cd import ChiSquareDrift, CVMDrift

        ref = self.reference.astype(np.float32, copy=False)
        self._detectors: list[tuple[list[int], Any]] = []
        if self.continuous:
            kind = CVMDrift if test == "cvm" else alibi_ks
            columns = ref if len(self.continuous) == ref.shape[1] else ref[:, self.continuous]
            self._detectors.append((self.continuous, kind(columns, p_val=p_val, correction=correction)))
        if self.categorical:
            self._detectors.append((self.categorical, ChiSquareDrift(ref[:, self.categorical], p_val=p_val,
                                                                     correction=correction)))

    def run(self, x: FloatArray) -> UnivariateResult:
        rows = np.asarray(x, np.float32).reshape(len(x), -1)
        p_values, distances = np.zeros(rows.shape[1]), np.zeros(rows.shape[1])
        for columns, detector in self._detectors:
            data = detector.predict(rows[:, columns], drift_type="batch", return_p_val=True,
                                    return_distance=True)["data"]
            p_values[columns] = np.asarray(data["p_val"], np.float64).reshape(-1)
            distances[columns] = np.asarray(data["distance"], np.float64).reshape(-1)
        is_drift, flags, threshold = corrected(p_values, self.p_val, self.correction)
        return UnivariateResult(p_values, distances, flags, is_drift, threshold)


class ScipyEngine(UnivariateEngine):
    def __init__(self, reference: FloatArray, *, test: TestName, p_val: float, correction: Correction,
                 categorical: Sequence[int] = ()) -> None:
        super().__init__(reference, test=test, p_val=p_val, correction=correction, categorical=categorical)
        self._ks_columns = [j for j in range(self.reference.shape[1]) if self.test_of(j) == "ks"]
        # ks_2samp(method="asymp"), as Alibi computes it, with the reference's side worked out once
        self._ks = KSReference(self.reference[:, self._ks_columns]) if self._ks_columns else None

    def run(self, x: FloatArray) -> UnivariateResult:
        from scipy import stats

        current = np.asarray(x, np.float64).reshape(len(x), -1)
        p_values, statistics = np.zeros(current.shape[1]), np.zeros(current.shape[1])
        if self._ks is not None:
            statistics[self._ks_columns], p_values[self._ks_columns] = self._ks.test(current[:, self._ks_columns])
        for j in range(self.reference.shape[1]):
            ref, cur = self.reference[:, j].astype(np.float64), current[:, j]
            if self.test_of(j) == "ks":
                continue
            if self.test_of(j) == "cvm":
                result = stats.cramervonmises_2samp(ref, cur)
                p, s = result.pvalue, result.statistic
            else:
                categories = np.unique(np.concatenate([ref, cur]))
                table = np.array([[np.sum(ref == c) for c in categories], [np.sum(cur == c) for c in categories]])
                s, p, _, _ = stats.chi2_contingency(table)
            p_values[j], statistics[j] = float(p), float(s)
        is_drift, flags, threshold = corrected(p_values, self.p_val, self.correction)
        return UnivariateResult(p_values, statistics, flags, is_drift, threshold)


def make_engine(engine: Literal["alibi", "scipy"], reference: FloatArray, *, test: TestName, p_val: float,
                correction: Correction, categorical: Sequence[int] = ()) -> UnivariateEngine:
    cls: type[UnivariateEngine] = AlibiEngine if engine == "alibi" else ScipyEngine
    return cls(reference, test=test, p_val=p_val, correction=correction, categorical=categorical)
