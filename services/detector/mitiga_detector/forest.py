"""An isolation forest's scores for a window's rows, the numbers scikit-learn gives, without its per-tree dispatch.

``IsolationForest.score_samples`` hands each of its trees to joblib with a fresh warnings filter and configuration
context: for a 100-row window that dispatch cost 20 times the trees' own work (the detector's profile,
docs/benchmarks.md, P4), and the estimator objects took megabytes per model. :class:`ForestScores` reads the fitted
trees once into flat arrays (each node's split, and its depth plus the average path length of the samples it holds,
as scikit-learn adds them) and walks every row down every tree at once.
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
    """The fitted trees as a few flat arrays (about 26 bytes a node, a fraction of the estimator objects: the forest
    is no longer kept), walked for every row and tree at once, one level at a time."""

    def __init__(self, forest: IsolationForest) -> None:
        width = forest.n_features_in_
        left, right, feature, threshold, path, roots = [], [], [], [], [], []
        offset, self._depth = 0, 0
        for estimator, features in zip(forest.estimators_, forest.estimators_features_, strict=True):
            tree = estimator.tree_
            leaf = tree.children_left == -1
            # a feature index in the rows' columns (a tree fitted on a subset of them names its own)
            columns = np.arange(width) if len(features) == width else np.asarray(features)
            roots.append(offset)
            left.append(np.where(leaf, np.arange(tree.node_count), tree.children_left) + offset)
            right.append(np.where(leaf, np.arange(tree.node_count), tree.children_right) + offset)
            feature.append(np.where(leaf, 0, columns[np.maximum(tree.feature, 0)]))
            threshold.append(np.where(leaf, np.inf, tree.threshold))  # a leaf leads to itself
            path.append(tree.compute_node_depths() + average_path_length(tree.n_node_samples) - 1.0)
            offset += tree.node_count
            self._depth = max(self._depth, int(tree.max_depth))
        self._left, self._right = np.concatenate(left).astype(np.int32), np.concatenate(right).astype(np.int32)
        self._feature = np.concatenate(feature).astype(np.int16 if width < 2**15 else np.int32)
        self._threshold, self._path = np.concatenate(threshold), np.concatenate(path)
        self._roots = np.asarray(roots, np.int32)
        self._denominator = float(len(forest.estimators_) * average_path_length(np.array([forest.max_samples_]))[0])
        self.offset = float(forest.offset_)

    @property
    def nbytes(self) -> int:
        arrays = (self._left, self._right, self._feature, self._threshold, self._path, self._roots)
        return sum(a.nbytes for a in arrays)

    def score_samples(self, rows: FloatArray) -> AnyArray:
        """``IsolationForest.score_samples``: the opposite of each row's anomaly score (lower: more abnormal)."""
        x = np.asarray(rows, np.float32).reshape(len(rows), -1)
        node = np.broadcast_to(self._roots, (len(x), len(self._roots)))
        at = np.arange(len(x))[:, None]
        for _ in range(self._depth):
            go_left = x[at, self._feature[node]] <= self._threshold[node]
            node = np.where(go_left, self._left[node], self._right[node])
        lengths = self._path[node]
        depths = np.zeros(len(x))
        for column in lengths.T:  # tree by tree, the order scikit-learn adds them in
            depths += column
        if not self._denominator:  # a forest of one training sample: scikit-learn scores every row 1
            return -np.ones(len(x))
        return -np.asarray(2.0 ** (-depths / self._denominator))
