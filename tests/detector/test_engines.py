"""Engines: Alibi's answers are reproduced exactly; the scipy engine agrees with Alibi."""

from __future__ import annotations

import numpy as np
import pytest
from alibi_detect.cd import ChiSquareDrift, CVMDrift, KSDrift

from mitiga_detector.engines import corrected, make_engine

RNG = np.random.default_rng(42)
REF = RNG.normal(size=(400, 4)).astype(np.float32)
CUR = RNG.normal(size=(80, 4)).astype(np.float32)
CUR[:, 2] += 0.6


@pytest.mark.parametrize(("test", "cls"), [("ks", KSDrift), ("cvm", CVMDrift)])
@pytest.mark.parametrize("correction", ["bonferroni", "fdr"])
def test_alibi_engine_equals_direct_alibi(test: str, cls: type, correction: str) -> None:
    direct = cls(REF, p_val=0.05, correction=correction).predict(CUR, drift_type="batch", return_p_val=True)["data"]
    ours = make_engine("alibi", REF, test=test, p_val=0.05, correction=correction).run(CUR)  # type: ignore[arg-type]
    np.testing.assert_array_equal(ours.p_values, np.asarray(direct["p_val"], np.float64))
    assert ours.is_drift == bool(direct["is_drift"])
    assert ours.drifted.tolist() == [False, False, True, False]


def test_chi2_engines_agree_on_categories() -> None:
    ref = RNG.integers(0, 4, size=(500, 2)).astype(np.float32)
    cur = RNG.choice(4, p=[0.7, 0.1, 0.1, 0.1], size=(100, 2)).astype(np.float32)
    direct = ChiSquareDrift(ref, p_val=0.05).predict(cur, drift_type="batch", return_p_val=True)["data"]
    alibi = make_engine("alibi", ref, test="chi2", p_val=0.05, correction="bonferroni").run(cur)
    scipy = make_engine("scipy", ref, test="chi2", p_val=0.05, correction="bonferroni").run(cur)
    np.testing.assert_allclose(alibi.p_values, direct["p_val"], rtol=0, atol=0)
    np.testing.assert_allclose(scipy.p_values, alibi.p_values, atol=1e-6)
    assert scipy.is_drift and alibi.is_drift


@pytest.mark.parametrize("test", ["ks", "cvm"])
@pytest.mark.parametrize("seed", range(5))
def test_scipy_engine_agrees_with_alibi(test: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    ref = rng.normal(size=(300, 3)).astype(np.float32)
    cur = (rng.normal(size=(60, 3)) + rng.uniform(0, 0.5, size=3)).astype(np.float32)
    a = make_engine("alibi", ref, test=test, p_val=0.05, correction="bonferroni").run(cur)  # type: ignore[arg-type]
    s = make_engine("scipy", ref, test=test, p_val=0.05, correction="bonferroni").run(cur)  # type: ignore[arg-type]
    np.testing.assert_allclose(s.p_values, a.p_values, atol=1e-6)
    np.testing.assert_allclose(s.statistics, a.statistics, atol=1e-6)
    assert s.is_drift == a.is_drift and s.drifted.tolist() == a.drifted.tolist()


def test_fdr_correction_matches_benjamini_hochberg() -> None:
    p = np.array([0.001, 0.008, 0.039, 0.041, 0.6])
    is_drift, flags, threshold = corrected(p, 0.05, "fdr")
    assert is_drift and flags.tolist() == [True, True, False, False, False] and threshold == pytest.approx(0.02)
    is_drift, flags, _ = corrected(p, 0.05, "bonferroni")
    assert flags.tolist() == [True, True, False, False, False]
    assert corrected(np.array([0.5, 0.9]), 0.05, "fdr")[0] is False


@pytest.mark.parametrize("engine", ["scipy", "alibi"])
def test_declared_categorical_features_are_tested_with_chi2(engine: str) -> None:
    from scipy import stats

    from mitiga_detector.engines import make_engine

    rng = np.random.default_rng(3)
    ref = np.column_stack([rng.normal(size=500), rng.integers(0, 3, 500)]).astype(np.float32)
    cur = np.column_stack([rng.normal(size=100), rng.choice(3, 100, p=[0.2, 0.2, 0.6])]).astype(np.float32)
    result = make_engine(engine, ref, test="ks", p_val=0.05, correction="bonferroni", categorical=[1]).run(cur)
    table = np.array([[np.sum(ref[:, 1] == c) for c in range(3)], [np.sum(cur[:, 1] == c) for c in range(3)]])
    chi2_p = stats.chi2_contingency(table)[1]
    ks_p = stats.ks_2samp(ref[:, 0], cur[:, 0], method="asymp").pvalue
    assert result.p_values == pytest.approx([ks_p, chi2_p], rel=1e-3)
    assert result.drifted.tolist() == [False, True]
