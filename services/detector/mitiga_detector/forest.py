"""An isolation forest's scores for a window's rows, the numbers scikit-learn gives, without its per-tree dispatch.

``IsolationForest.score_samples`` hands each of its trees to joblib with a fresh warnings filter and configuration
context: for a 100-row window that dispatch cost 20 times the trees' own work (the detector's profile,
docs/benchmarks.md, P4), and the estimator objects took megabytes per model. :class:`ForestScores` reads the fitted
trees once into flat arrays (each node's split, its depth and the number of samples it holds, from which a leaf's path
length is worked out as scikit-learn adds it) and walks every row down every tree at once.
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


def preorder(left: AnyArray, right: AnyArray) -> AnyArray:
    """A tree's nodes renumbered depth first, left child first, so that every split's left child is the next node:
    ``order[new] = old``. scikit-learn's depth-first builder already numbers them so (the order is then the
    identity)."""
    split = np.flatnonzero(left != -1)
    if np.array_equal(left[split], split + 1):
        return np.arange(len(left))
    order, stack = [], [0]
    while stack:
        node = stack.pop()
        order.append(node)
        if left[node] != -1:
            stack += [int(right[node]), int(left[node])]
    return np.asarray(order)


def below(threshold: AnyArray) -> AnyArray:
    """float64 split thresholds as float32 without changing a split of float32 rows: the largest float32 at or below
    each (``x <= t`` holds for a float32 ``x`` exactly when ``x <=`` that float32 does)."""
    narrow = threshold.astype(np.float32)
    over = narrow.astype(np.float64) > threshold
    narrow[over] = np.nextafter(narrow[over], np.float32(-np.inf))
    return narrow


class ForestScores:
    """The fitted trees as a few flat arrays, 13 bytes a node (the estimator objects took megabytes per model: the
    forest is no longer kept): each split's feature, float32 threshold and right child (its left child is the next
    node), each node's depth and sample count. Every row walks every tree at once, one level at a time."""

    def __init__(self, forest: IsolationForest) -> None:
        width = forest.n_features_in_
        right, feature, threshold, depth, samples, roots = [], [], [], [], [], []
        offset, self._levels = 0, 0
        for estimator, features in zip(forest.estimators_, forest.estimators_features_, strict=True):
            tree = estimator.tree_
            order = preorder(tree.children_left, tree.children_right)
            new = np.empty_like(order)
            new[order] = np.arange(len(order))
            leaf = tree.children_left[order] == -1
            # a feature index in the rows' columns (a tree fitted on a subset of them names its own)
            columns = np.arange(width) if len(features) == width else np.asarray(features)
            roots.append(offset)
            # a leaf leads to itself: no row goes left of -inf, and its right child is itself
            right.append(np.where(leaf, np.arange(len(order)), new[np.maximum(tree.children_right[order], 0)]) + offset)
            feature.append(np.where(leaf, 0, columns[np.maximum(tree.feature[order], 0)]))
            threshold.append(np.where(leaf, -np.inf, below(tree.threshold[order])))
            depth.append(tree.compute_node_depths()[order])
            samples.append(tree.n_node_samples[order])
            offset += tree.node_count
            self._levels = max(self._levels, int(tree.max_depth))
        self._right = np.concatenate(right).astype(np.int32)
        self._feature = np.concatenate(feature).astype(np.int16 if width < 2**15 else np.int32)
        self._threshold = np.concatenate(threshold).astype(np.float32)
        self._depth = np.concatenate(depth).astype(np.uint8 if self._levels < 2**8 else np.int32)
        most = int(forest.max_samples_)
        self._samples = np.concatenate(samples).astype(np.uint16 if most < 2**16 else np.int64)
        self._average = average_path_length(np.arange(most + 1))  # c(n) for every sample count a node can hold
        self._roots = np.asarray(roots, np.int32)
        self._denominator = float(len(forest.estimators_) * average_path_length(np.array([most]))[0])
        self.offset = float(forest.offset_)

    @property
    def nbytes(self) -> int:
        arrays = (self._right, self._feature, self._threshold, self._depth, self._samples, self._average, self._roots)
        return sum(a.nbytes for a in arrays)

    def score_samples(self, rows: FloatArray) -> AnyArray:
        """``IsolationForest.score_samples``: the opposite of each row's anomaly score (lower: more abnormal)."""
        x = np.asarray(rows, np.float32).reshape(len(rows), -1)
        node = np.broadcast_to(self._roots, (len(x), len(self._roots)))
        at = np.arange(len(x))[:, None]
        for _ in range(self._levels):
            go_left = x[at, self._feature[node]] <= self._threshold[node]
            node = np.where(go_left, node + 1, self._right[node])
        # a leaf's path length as scikit-learn sums it: its depth, plus c(its samples), less one
        lengths = self._depth[node] + self._average[self._samples[node]] - 1.0
        depths = np.zeros(len(x))
        for column in lengths.T:  # tree by tree, the order scikit-learn adds them in
            depths += column
        if not self._denominator:  # a forest of one training sample: scikit-learn scores every row 1
            return -np.ones(len(x))
        return -np.asarray(2.0 ** (-depths / self._denominator))
