"""An isolation forest's scores for a window's rows, the numbers scikit-learn gives, without its per-tree dispatch.

``IsolationForest.score_samples`` hands each of its trees to joblib with a fresh warnings filter and configuration
context: for a 100-row window that dispatch cost 20 times the trees' own work (the detector's profile,
docs/benchmarks.md, P4). :class:`ForestScores` reads the fitted trees once (each node's depth plus the average path
length of the samples it holds, as scikit-learn adds them) and scores rows with one ``apply`` per tree.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from sklearn.ensemble import IsolationForest

    from mitiga_core.types import AnyArray, FloatArray


def average_path_length(n_samples: AnyArray) -> AnyArray:
    """The average path length of an unsuccessful search in a binary search tree of ``n`` nodes (Liu et al.'s c(n)),
    as scikit-learn computes it."""
    n = np.asarray(n_samples, np.float64)
    out = np.zeros_like(n)
    out[n == 2] = 1.0
    big = n > 2
    out[big] = 2.0 * (np.log(n[big] - 1.0) + np.euler_gamma) - 2.0 * (n[big] - 1.0) / n[big]
    return out


class ForestScores:
    def __init__(self, forest: IsolationForest) -> None:
        width = forest.n_features_in_
        self._trees = []
        for estimator, features in zip(forest.estimators_, forest.estimators_features_, strict=True):
            tree = estimator.tree_
            path = tree.compute_node_depths() + average_path_length(tree.n_node_samples) - 1.0
            columns = None if len(features) == width else np.asarray(features)
            self._trees.append((tree, columns, path))
        self._denominator = float(len(forest.estimators_) * average_path_length(np.array([forest.max_samples_]))[0])
        self.offset = float(forest.offset_)

    def score_samples(self, rows: FloatArray) -> AnyArray:
        """``IsolationForest.score_samples``: the opposite of each row's anomaly score (lower: more abnormal)."""
        x = np.ascontiguousarray(rows, np.float32)
        depths = np.zeros(len(x))
        for tree, columns, path in self._trees:
            depths += path[tree.apply(x if columns is None else np.ascontiguousarray(x[:, columns]))]
        if not self._denominator:  # a forest of one training sample: scikit-learn scores every row 1
            return -np.ones(len(x))
        return -np.asarray(2.0 ** (-depths / self._denominator))
