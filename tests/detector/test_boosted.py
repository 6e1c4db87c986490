"""The loss estimator's gradient-boosted trees, kept as flat arrays, predict what scikit-learn predicts
(mitiga_detector.boosted)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingRegressor

from mitiga_detector.boosted import BoostedTrees


@pytest.mark.parametrize("missing", [0.0, 0.1])
@pytest.mark.parametrize("leaves", [2, 31])
def test_predictions_are_scikit_learns(missing: float, leaves: int) -> None:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(400, 5))
    y = np.abs(2 * x[:, 0] - x[:, 3] + rng.normal(scale=0.3, size=400))
    x[rng.random(x.shape) < missing] = np.nan  # missing values go where the fit sent them
    model = HistGradientBoostingRegressor(max_iter=60, max_leaf_nodes=leaves, min_samples_leaf=5,
                                          random_state=0).fit(x, y)
    rows = rng.normal(scale=1.5, size=(300, 5))
    rows[rng.random(rows.shape) < missing] = np.nan
    trees = BoostedTrees(model)
    assert np.array_equal(trees.predict(rows), model.predict(rows))  # to the last bit
    assert np.array_equal(trees.predict(rows[:1]), model.predict(rows[:1]))
    assert trees.nbytes < sum(p.nodes.nbytes for (p,) in model._predictors) / 3


def test_trees_of_one_leaf() -> None:
    """A constant target grows trees that are a lone leaf: every row gets the baseline."""
    x = np.random.default_rng(8).normal(size=(100, 3))
    model = HistGradientBoostingRegressor(max_iter=5).fit(x, np.full(100, 0.25))
    assert np.array_equal(BoostedTrees(model).predict(x), model.predict(x))


def test_other_losses_are_refused() -> None:
    x = np.random.default_rng(9).normal(size=(100, 2))
    model = HistGradientBoostingRegressor(max_iter=3, loss="absolute_error").fit(x, np.abs(x[:, 0]))
    with pytest.raises(ValueError, match="squared-error"):
        BoostedTrees(model)
