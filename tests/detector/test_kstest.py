"""The detector's KS test gives scipy's ks_2samp (method="asymp") and Alibi's KSDrift numbers exactly
(mitiga_detector.kstest)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from mitiga_detector import kstest
from mitiga_detector.kstest import KSReference


def _windows(rng: np.random.Generator, dtype: type) -> list[np.ndarray]:
    ties = np.round(rng.normal(size=(100, 3)), 1)  # many equal values
    shifted = rng.normal(0.4, 1.0, size=(37, 3))
    return [rng.normal(size=(100, 3)).astype(dtype), ties.astype(dtype), shifted.astype(dtype),
            rng.normal(size=(1, 3)).astype(dtype)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_statistics_and_p_values_are_scipys(dtype: type) -> None:
    rng = np.random.default_rng(7)
    reference = np.vstack([rng.normal(size=(900, 3)), np.round(rng.normal(size=(300, 3)), 1)]).astype(dtype)
    ks = KSReference(reference)
    for window in _windows(rng, dtype) * 2:  # the second time from the memo
        d, p = ks.test(window)
        for j in range(3):
            expected = stats.ks_2samp(reference[:, j], window[:, j], alternative="two-sided", method="asymp")
            assert d[j] == expected.statistic and p[j] == expected.pvalue


def test_the_memo_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kstest, "MEMO_MAX", 10)
    monkeypatch.setattr(kstest, "_P_VALUES", {})
    rng = np.random.default_rng(8)
    ks = KSReference(rng.normal(size=(500, 4)))
    for _ in range(30):
        _, p = ks.test(rng.normal(size=(50, 4)))
        assert len(ks._p) <= 10 and np.all((p >= 0) & (p <= 1))


@pytest.mark.slow  # Alibi's import
def test_alibis_answers_are_unchanged() -> None:
    from alibi_detect.cd import KSDrift

    rng = np.random.default_rng(9)
    reference = rng.normal(size=(1000, 3)).astype(np.float32)
    ours, alibi = kstest.alibi_ks(reference, p_val=0.05, correction="bonferroni"), KSDrift(reference, p_val=0.05)
    drifts = []
    for window in _windows(rng, np.float32):
        a = ours.predict(window, drift_type="batch", return_p_val=True, return_distance=True)["data"]
        b = alibi.predict(window, drift_type="batch", return_p_val=True, return_distance=True)["data"]
        np.testing.assert_array_equal(a["p_val"], b["p_val"])
        np.testing.assert_array_equal(a["distance"], b["distance"])
        assert a["is_drift"] == b["is_drift"]
        drifts.append(a["is_drift"])
    assert any(drifts) and not all(drifts)
