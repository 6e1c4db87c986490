"""What the detector can say before labels arrive: the estimated error, and how many inputs are outliers.

- :class:`LossEstimator` is direct loss estimation (DLE, as NannyML does it): a gradient-boosted regressor learns
  the model's absolute error from its inputs and prediction on held-out rows (the bundle's ``validation.npz``),
  kept as :class:`~mitiga_detector.boosted.BoostedTrees`; the mean of its estimates over a window estimates the
  window's MAE. It moves when the inputs go where the model is known to err, and stays put on a shift the model
  handles well. It cannot see a change of the input→target relation itself: that needs labels (the realised error
  and the error-stream detector).
- :class:`ConfidenceEstimator` is confidence-based performance estimation (CBPE, as NannyML does it) for
  classifiers: the probability of the predicted class, calibrated by isotonic regression on the bundle's held-out
  rows (its predictions and their true classes, kept at training time), is the chance that row is right; one minus
  its mean over a window estimates the window's error rate. It moves when the inputs go where the model is unsure.
- :class:`OutlierScorer`: an isolation forest fitted on the reference; a row is an outlier when it scores beyond
  the reference's ``quantile``. Alibi Detect's ``IForest`` with the ``alibi`` engine, scikit-learn's
  ``IsolationForest`` (BSD-3) with the ``scipy`` engine.

Both are fitted when the detector first meets a model version, from arrays in its bundle (never from a pickled
estimator: a bundle is data, never code), with a fixed seed, so every replica fits the same ones.

Both are fitted on one thread, and score in numpy alone (flat arrays, :mod:`mitiga_detector.boosted` and
:mod:`mitiga_detector.forest`). A window is tens to thousands of rows, where OpenMP's and BLAS's threads cost more than
they save, and those pools size themselves by the machine's cores, not by the pod's CPU limit: under any other
load their threads spin against each other. Measured on two busy cores: fitting and scoring the loss estimator
took 34 s with the default pools and 0.8 s with one thread.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Literal, Protocol

import numpy as np

from mitiga_detector.boosted import BoostedTrees
from mitiga_detector.evidence import Mean
from mitiga_detector.forest import ForestScores

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from threadpoolctl import ThreadpoolController

    from mitiga_core.bundle import ModelManifest
    from mitiga_core.types import FloatArray


_controllers: dict[int, ThreadpoolController] = {}


def one_thread() -> AbstractContextManager[object]:
    """OpenMP and BLAS limited to one thread in this block. Looking the libraries up takes 15 ms, so it is done
    again only when modules were imported since (an import is what loads another library: TensorFlow brings its
    own pools)."""
    from threadpoolctl import ThreadpoolController

    loaded = len(sys.modules)
    if loaded not in _controllers:
        _controllers.clear()
        _controllers[loaded] = ThreadpoolController()
    return _controllers[loaded].limit(limits=1)


class Estimator(Protocol):
    metric: str
    """The metric estimated (``mae``, ``error_rate``): the signal is ``estimated_<metric>_ratio``."""
    validation_value: float
    """That metric on the held-out rows the estimator was fitted on."""

    def rows(self, features: FloatArray, pred: FloatArray) -> FloatArray:
        """Each row's estimated value of the metric."""

    def estimate(self, features: FloatArray, pred: FloatArray) -> float:
        """The window's estimated metric."""

    def window_mean(self, rows: FloatArray) -> Mean:
        """The window's estimate from its rows' (``rows``), with how far the window's realised value may lie from
        it."""


class LossEstimator:
    metric = "mae"

    def __init__(self, features: FloatArray, pred: FloatArray, truth: FloatArray, *, seed: int = 0) -> None:
        from sklearn.ensemble import HistGradientBoostingRegressor

        x = self._design(features, pred)
        error = np.abs(np.asarray(truth, np.float64) - np.asarray(pred, np.float64)).reshape(len(x), -1).mean(axis=1)
        self.validation_value = float(error.mean())
        model = HistGradientBoostingRegressor(max_iter=100, learning_rate=0.1, min_samples_leaf=10, random_state=seed)
        with one_thread():
            model.fit(x, error)
        self._trees = BoostedTrees(model)  # its predictions, in a fifth of the memory

    @staticmethod
    def _design(features: FloatArray, pred: FloatArray) -> FloatArray:
        f = np.asarray(features, np.float64)
        return np.column_stack([f.reshape(len(f), -1), np.asarray(pred, np.float64).reshape(len(f), -1)])

    def rows(self, features: FloatArray, pred: FloatArray) -> FloatArray:
        """Each row's estimated absolute error, in original units."""
        return np.clip(self._trees.predict(self._design(features, pred)), 0.0, None)

    def estimate(self, features: FloatArray, pred: FloatArray) -> float:
        """The estimated MAE of these rows, in original units."""
        return float(self.rows(features, pred).mean())

    def window_mean(self, rows: FloatArray) -> Mean:
        """The estimated MAE and the standard error of the rows' estimated errors."""
        return Mean.of(rows)


class ConfidenceEstimator:
    metric = "error_rate"

    def __init__(self, features: FloatArray, pred: FloatArray, truth: FloatArray, *, seed: int = 0) -> None:
        from sklearn.isotonic import IsotonicRegression

        probs = np.asarray(pred, np.float64).reshape(len(pred), -1)
        right = (np.argmax(probs, axis=1) == np.asarray(truth).reshape(-1).astype(int)).astype(np.float64)
        self.validation_value = float(1.0 - right.mean())
        self._calibration = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
        self._calibration.fit(probs.max(axis=1), right)

    def rows(self, features: FloatArray, pred: FloatArray) -> FloatArray:
        """Each row's chance of being wrong: one minus its calibrated confidence."""
        confidence = np.asarray(pred, np.float64).reshape(len(pred), -1).max(axis=1)
        return 1.0 - np.asarray(self._calibration.predict(confidence), np.float64)

    def estimate(self, features: FloatArray, pred: FloatArray) -> float:
        """The estimated error rate of these rows."""
        return float(self.rows(features, pred).mean())

    def window_mean(self, rows: FloatArray) -> Mean:
        """The estimated error rate and the spread of the number of rows that turn out wrong."""
        return Mean.of_chances(rows)


ESTIMATORS: dict[str, type[LossEstimator] | type[ConfidenceEstimator]] = {
    LossEstimator.metric: LossEstimator, ConfidenceEstimator.metric: ConfidenceEstimator}


def make_estimator(manifest: ModelManifest, features: FloatArray, pred: FloatArray, truth: FloatArray) -> Estimator:
    """The estimator of the metric the model's task estimates before labels."""
    return ESTIMATORS[manifest.kind.estimated_metric](features, pred, truth)


class OutlierScorer:
    """Rows unlike the reference: an isolation forest fitted on it (Alibi's ``IForest``, or scikit-learn's with the
    scipy engine), its threshold the reference's own ``quantile`` score; rows scored by :class:`ForestScores`."""

    def __init__(self, reference: FloatArray, *, engine: Literal["alibi", "scipy"], quantile: float = 0.99,
                 seed: int = 0) -> None:
        ref = np.asarray(reference, np.float32).reshape(len(reference), -1)
        self.engine = engine
        if engine == "alibi":
            from alibi_detect.od import IForest

            detector = IForest(threshold=0.0, n_estimators=100)  # the real threshold is inferred below
            detector.isolationforest.set_params(random_state=seed)
            with one_thread():
                detector.fit(ref)
            self._scores = ForestScores(detector.isolationforest)
            # Alibi's infer_threshold on the same scores: the percentile of -(score_samples - offset) on the reference
            scores = self._scores.offset - self._scores.score_samples(ref)
            self._threshold = float(np.percentile(scores, quantile * 100))
        else:
            from sklearn.ensemble import IsolationForest

            with one_thread():
                forest = IsolationForest(n_estimators=100, random_state=seed).fit(ref)
            self._scores = ForestScores(forest)
            self._threshold = float(np.quantile(-self._scores.score_samples(ref), quantile)) + self._scores.offset

    def flags(self, rows: FloatArray) -> FloatArray:
        """1 for each row that is an outlier against the reference, else 0."""
        x = np.asarray(rows, np.float32).reshape(len(rows), -1)
        return (self._scores.offset - self._scores.score_samples(x) > self._threshold).astype(np.float64)
