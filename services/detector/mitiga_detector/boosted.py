"""A fitted gradient-boosted regressor's predictions, the numbers scikit-learn gives, from a few flat arrays.

The loss estimator's ``HistGradientBoostingRegressor`` keeps each tree as an array of 60-byte node records beside
its binning data: about 0.4 MB per model, half of what a detector held per model (docs/benchmarks.md, P8).
:class:`BoostedTrees` reads the fitted trees once into flat arrays, 19 bytes a split and 8 a leaf, and walks every
row down every tree at once. Numeric features only (the estimator is given no categorical ones); the squared-error
loss, whose link is the identity.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from sklearn.ensemble import HistGradientBoostingRegressor

    from mitiga_core.types import AnyArray, FloatArray


class BoostedTrees:
    """The trees as arrays: for each split its feature, threshold, where a missing value goes, and its two children
    (a split's index, or ``~i`` for the i-th leaf); for each leaf its value. Summed tree by tree from the baseline,
    in scikit-learn's order, so the predictions are its own to the last bit."""

    def __init__(self, model: HistGradientBoostingRegressor) -> None:
        if model.loss != "squared_error" or model.is_categorical_ is not None:
            raise ValueError("BoostedTrees takes numeric features and the squared-error loss")
        feature, threshold, missing_left, left, right, values, roots = [], [], [], [], [], [], []
        splits = leaves = 0
        for (predictor,) in model._predictors:
            nodes = predictor.nodes
            leaf = nodes["is_leaf"].astype(bool)
            # a node's new index: splits and leaves numbered apart, across every tree; a leaf i is ~i
            index = np.where(leaf, ~(leaves + np.cumsum(leaf) - 1), splits + np.cumsum(~leaf) - 1)
            inner = nodes[~leaf]
            feature.append(inner["feature_idx"])
            threshold.append(inner["num_threshold"])
            missing_left.append(inner["missing_go_to_left"].astype(bool))
            left.append(index[inner["left"]])
            right.append(index[inner["right"]])
            values.append(nodes["value"][leaf])
            roots.append(index[0])
            splits, leaves = splits + int((~leaf).sum()), leaves + int(leaf.sum())
        width = model.n_features_in_
        self._feature = np.concatenate(feature).astype(np.int16 if width < 2**15 else np.int32)
        self._threshold = np.concatenate(threshold).astype(np.float64)
        self._missing_left = np.concatenate(missing_left)
        self._left, self._right = np.concatenate(left).astype(np.int32), np.concatenate(right).astype(np.int32)
        self._values = np.concatenate(values).astype(np.float64)
        self._roots = np.asarray(roots, np.int32)
        self._baseline = float(np.asarray(model._baseline_prediction).reshape(-1)[0])

    @property
    def nbytes(self) -> int:
        arrays = (self._feature, self._threshold, self._missing_left, self._left, self._right, self._values,
                  self._roots)
        return sum(a.nbytes for a in arrays)

    def predict(self, rows: FloatArray) -> AnyArray:
        """``HistGradientBoostingRegressor.predict``. Every (row, tree) pair walks down a level at a time; the pairs
        that reached a leaf drop out."""
        x = np.asarray(rows, np.float64).reshape(len(rows), -1)
        flat, trees = x.ravel(), len(self._roots)
        node = np.tile(self._roots, len(x))  # pair i is row i // trees, tree i % trees
        start = np.repeat(np.arange(len(x)) * x.shape[1], trees)
        pair = np.arange(len(node))
        leaf = np.empty(len(node), np.int32)
        missing = bool(np.isnan(flat).any())
        while len(node):
            done = node < 0
            if done.any():
                leaf[pair[done]] = ~node[done]
                node, start, pair = node[~done], start[~done], pair[~done]
                if not len(node):
                    break
            value = flat[start + self._feature[node]]
            go_left = value <= self._threshold[node]
            if missing:
                go_left |= np.isnan(value) & self._missing_left[node]
            node = np.where(go_left, self._left[node], self._right[node])
        out = np.full(len(x), self._baseline)
        for column in self._values[leaf].reshape(len(x), trees).T:  # tree by tree, as scikit-learn adds them
            out += column
        return out
