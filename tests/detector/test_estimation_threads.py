"""The detector's estimators run on one thread: OpenMP's and BLAS's pools size themselves by the machine's cores,
not the pod's CPU limit, and on a window's few rows their threads only spin against each other."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from mitiga_detector.estimation import LossEstimator, OutlierScorer


def threads_seen(calls: list[int]) -> Any:
    def record(*_: Any, **__: Any) -> None:
        calls.append(max(lib["num_threads"] for lib in threadpool_info()))
    return record


def test_the_loss_estimator_fits_on_one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """(Rows are scored by mitiga_detector.boosted, in numpy alone.)"""
    from sklearn.ensemble import HistGradientBoostingRegressor

    calls: list[int] = []
    fit = HistGradientBoostingRegressor.fit

    def spy_fit(self: Any, *args: Any, **kwargs: Any) -> Any:
        threads_seen(calls)()
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(HistGradientBoostingRegressor, "fit", spy_fit)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    pred = x.sum(axis=1, keepdims=True)
    with threadpool_limits(limits=2):  # the pools as a machine with two or more cores sizes them
        estimator = LossEstimator(x, pred, pred + rng.normal(scale=0.1, size=pred.shape))
        assert estimator.estimate(x[:20], pred[:20]) >= 0
        assert max(lib["num_threads"] for lib in threadpool_info()) == 2  # the limit ends with the call
    assert calls == [1]


@pytest.mark.parametrize("engine", ["scipy", pytest.param("alibi", marks=pytest.mark.slow)])  # alibi: imports TF
def test_the_outlier_forest_fits_on_one_thread(monkeypatch: pytest.MonkeyPatch, engine: str) -> None:
    """(Rows are scored by mitiga_detector.forest, in numpy alone.)"""
    from sklearn.ensemble import IsolationForest

    calls: list[int] = []
    fit = IsolationForest.fit

    def spy(self: Any, *args: Any, **kwargs: Any) -> Any:
        threads_seen(calls)()
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(IsolationForest, "fit", spy)
    reference = np.random.default_rng(1).normal(size=(300, 3))
    with threadpool_limits(limits=2):
        scorer = OutlierScorer(reference, engine=engine)  # type: ignore[arg-type]
        assert scorer.flags(reference[:10] + 8).mean() == 1.0
    assert calls and set(calls) == {1}
