"""The detector's isolation forest scores are scikit-learn's, and its outlier flags Alibi's (mitiga_detector.forest)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import IsolationForest

from mitiga_detector.estimation import OutlierScorer
from mitiga_detector.forest import ForestScores, below, preorder


@pytest.mark.parametrize("max_features", [1.0, 0.5])
@pytest.mark.parametrize("max_samples", ["auto", 2, 64])
def test_scores_are_scikit_learns(max_features: float, max_samples: str | int) -> None:
    rng = np.random.default_rng(3)
    reference = rng.normal(size=(600, 6)).astype(np.float32)
    forest = IsolationForest(n_estimators=40, max_features=max_features, max_samples=max_samples,
                             random_state=1).fit(reference)
    rows = np.vstack([rng.normal(size=(150, 6)), rng.normal(4.0, 1.0, size=(50, 6))])
    np.testing.assert_allclose(ForestScores(forest).score_samples(rows), forest.score_samples(rows), rtol=1e-12)


@pytest.mark.slow  # Alibi's import
def test_flags_are_alibis() -> None:
    from alibi_detect.od import IForest

    rng = np.random.default_rng(4)
    reference = rng.normal(size=(800, 5)).astype(np.float32)
    rows = np.vstack([rng.normal(size=(300, 5)), rng.normal(2.5, 1.0, size=(100, 5))]).astype(np.float32)
    ours = OutlierScorer(reference, engine="alibi", quantile=0.95)
    alibi = IForest(threshold=0.0, n_estimators=100)
    alibi.isolationforest.set_params(random_state=0)
    alibi.fit(reference)
    alibi.infer_threshold(reference, threshold_perc=95)
    expected = alibi.predict(rows, return_instance_score=False)["data"]["is_outlier"]
    flags = ours.flags(rows)
    assert flags.tolist() == np.asarray(expected, np.float64).tolist()
    assert 0 < flags[:300].mean() < 0.2 and flags[300:].mean() > 0.5  # it does tell the shifted rows


def test_scipy_engine_flags_the_same_share_of_the_reference() -> None:
    rng = np.random.default_rng(5)
    reference = rng.normal(size=(1000, 4)).astype(np.float32)
    scorer = OutlierScorer(reference, engine="scipy", quantile=0.9)
    assert scorer.flags(reference).mean() == pytest.approx(0.1, abs=0.01)


def test_trees_numbered_otherwise_are_renumbered_depth_first() -> None:
    """A tree whose left children are not the next node (breadth-first numbering) scores the same."""
    # root 0 splits into 1 and 2; node 1 into 3 and 4: breadth first, so 1's left child is 3, not 2
    left, right = np.array([1, 3, -1, -1, -1]), np.array([2, 4, -1, -1, -1])
    order = preorder(left, right)
    assert order.tolist() == [0, 1, 3, 4, 2]
    new = np.empty_like(order)
    new[order] = np.arange(len(order))
    splits = [new[i] for i in (0, 1)]
    assert [new[left[i]] for i in (0, 1)] == [s + 1 for s in splits]
    assert preorder(np.array([1, 2, -1, -1, -1]), np.array([4, 3, -1, -1, -1])).tolist() == [0, 1, 2, 3, 4]


def test_float32_thresholds_split_float32_rows_as_float64_ones_do() -> None:
    rng = np.random.default_rng(6)
    values = np.sort(rng.normal(size=2000).astype(np.float32))
    midpoints = values[:-1] / 2.0 + values[1:].astype(np.float64) / 2.0  # as trees place them, between two float32s
    wide = np.concatenate([midpoints, values.astype(np.float64), [np.inf, -np.inf]])
    narrow = below(wide)
    # rows at, just above and just below each value, and at each midpoint rounded to the nearest float32 (which lies
    # above the midpoint about half the time: a threshold rounded to nearest would send those rows left)
    rows = np.concatenate([values, np.nextafter(values, np.float32(np.inf)), np.nextafter(values, np.float32(-np.inf)),
                           midpoints.astype(np.float32)])[:, None]
    assert narrow.dtype == np.float32
    for part in np.array_split(np.arange(len(wide)), 8):
        assert np.array_equal(rows <= narrow[None, part], rows <= wide[None, part])
