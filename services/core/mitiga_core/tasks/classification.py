"""``binary`` and ``multiclass``: a table of features in, a probability per class out (stored as ``(rows, k)``), and
the label (the most probable class's name) answered beside them. Ground truth is the true class, by name or index;
a row's loss is its log loss."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from mitiga_core.tasks.base import Answer, Direction, Task, TruthError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from mitiga_core.bundle.manifest import ModelManifest, Scaler
    from mitiga_core.types import AnyArray, FloatArray

IMBALANCE = 0.5
"""A class less frequent than this share of the commonest class's count is rare: training weights the classes."""
EPS = 1e-7
"""Probabilities are clipped to [EPS, 1 - EPS] for the log loss (as Keras does), so one confident miss is finite."""


def _labels(truth: AnyArray) -> AnyArray:
    return np.asarray(truth, np.float64).reshape(-1).astype(np.int64)


def _probs(pred: AnyArray, rows: int) -> AnyArray:
    return np.asarray(pred, np.float64).reshape(rows, -1)


def roc_auc(labels: AnyArray, scores: AnyArray) -> float:
    """The area under the ROC curve (the Mann-Whitney U over both classes' counts); NaN with one class only."""
    from scipy.stats import rankdata

    positive = labels == 1
    n1, n0 = int(positive.sum()), int((~positive).sum())
    if n1 == 0 or n0 == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[positive].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


class Classification(Task):
    targets_like_outputs: ClassVar[bool] = False
    ratio_metrics: ClassVar[tuple[str, ...]] = ("log_loss", "error_rate")
    gate_metrics: ClassVar[dict[str, Direction]] = {"log_loss": "lower", "f1": "higher", "accuracy": "higher",
                                                    "brier": "lower"}
    estimated_metric: ClassVar[str] = "error_rate"
    last_layer: ClassVar[str]
    """What the model's last layer must be, for the message when it is not."""

    def classes_of(self, activation: str, units: list[int]) -> int | None:
        """The number of classes a model whose last layer has this activation and output shape gives, or None when
        it does not give this task's probabilities."""
        k = units[0] if len(units) == 1 else 0
        return k if activation == "softmax" and k >= 2 else None

    def check(self, manifest: ModelManifest) -> None:
        if manifest.window is not None:
            raise ValueError(f"a {self.name} model has no window")
        if len(set(manifest.classes)) != len(manifest.classes) or any(not c for c in manifest.classes):
            raise ValueError("class names must be unique and non-empty")
        if manifest.output_scaler.kind != "none":
            raise ValueError(f"a {self.name} model's outputs are probabilities: its output scaler must be 'none'")

    def output_width(self, manifest: ModelManifest) -> int:
        return len(manifest.classes)

    def outputs(self, manifest: ModelManifest, y: AnyArray, scaler: Scaler | None = None) -> FloatArray:
        """Probabilities ``(rows, k)``: a single sigmoid unit ``p`` becomes ``[1 - p, p]``."""
        probs = np.asarray(y, np.float32).reshape(len(y), -1)
        if probs.shape[1] == 1:
            probs = np.concatenate([1.0 - probs, probs], axis=1)
        return probs

    def answers(self, manifest: ModelManifest, outputs: FloatArray) -> list[Answer]:
        """``probabilities`` (FP32 ``[rows, k]``) and ``label`` (BYTES ``[rows]``, the most probable class)."""
        names = np.asarray([c.encode() for c in manifest.classes], dtype=object)
        return [("probabilities", "FP32", np.ascontiguousarray(outputs, np.float32)),
                ("label", "BYTES", names[np.argmax(outputs, axis=1)])]

    def answer_metadata(self, manifest: ModelManifest) -> list[tuple[str, str, list[int]]]:
        return [("probabilities", "FP32", [-1, len(manifest.classes)]), ("label", "BYTES", [-1])]

    def prediction_columns(self, outputs: FloatArray) -> tuple[FloatArray, list[int]]:
        """Each class's score (KS) and the predicted class (χ² on its counts)."""
        probs = np.asarray(outputs, np.float32).reshape(len(outputs), -1)
        predicted = np.argmax(probs, axis=1).astype(np.float32)[:, None]
        return np.concatenate([probs, predicted], axis=1), [probs.shape[1]]

    def truth_width(self, manifest: ModelManifest) -> int:
        return 1

    def truth(self, manifest: ModelManifest, values: Sequence[Any]) -> list[float]:
        """Each row's true class, by name (a string) or index (a whole number)."""
        classes, out = manifest.classes, []
        for value in values:
            if isinstance(value, str):
                if value not in classes:
                    raise TruthError(f"unknown class {value!r}; the classes are {classes}")
                out.append(float(classes.index(value)))
            elif isinstance(value, int | float) and not isinstance(value, bool) and float(value).is_integer() \
                    and 0 <= value < len(classes):
                out.append(float(value))
            else:
                raise TruthError(f"{value!r} is neither a class name nor a class index 0..{len(classes) - 1}; the "
                                 f"classes are {classes}")
        return out

    def row_loss(self, manifest: ModelManifest, truth: FloatArray, pred: FloatArray) -> FloatArray:
        """Each row's log loss."""
        labels = _labels(truth)
        probs = np.clip(_probs(pred, len(labels)), EPS, 1 - EPS)
        return -np.log(probs[np.arange(len(labels)), labels])

    def request_loss(self, manifest: ModelManifest, truth: FloatArray, pred: FloatArray, *,
                     squared: bool = False) -> float:
        """The request's mean log loss."""
        return float(self.row_loss(manifest, truth, pred).mean())

    def error_stream(self, manifest: ModelManifest, truth: FloatArray, pred: FloatArray) -> FloatArray:
        """1 where the predicted class is wrong: ADWIN's bound holds for values in [0, 1], and a row's log loss is
        unbounded (one confident mistake in a hard week reads as a change)."""
        return self.row_estimand(truth, pred)

    def ratio_rows(self, manifest: ModelManifest, truth: FloatArray, pred: FloatArray) -> dict[str, FloatArray]:
        """Each row's log loss, and 1 where its predicted class is wrong (the error rate's rows)."""
        return {"log_loss": self.row_loss(manifest, truth, pred), "error_rate": self.row_estimand(truth, pred)}

    def row_estimand(self, truth: FloatArray, pred: FloatArray) -> FloatArray:
        """1 where the predicted class is wrong (the error rate's rows)."""
        labels = _labels(truth)
        return (np.argmax(_probs(pred, len(labels)), axis=1) != labels).astype(np.float64)

    def scores(self, truth: FloatArray, pred: FloatArray) -> dict[str, float]:
        """Accuracy, error rate, macro F1, log loss, Brier score, each class's recall (``recall_<index>``) and, for
        two classes, ROC AUC."""
        labels = _labels(truth)
        if labels.size == 0:
            raise ValueError("need at least one labelled row")
        probs = _probs(pred, len(labels))
        k = probs.shape[1]
        predicted = np.argmax(probs, axis=1)
        onehot = np.eye(k)[labels]
        clipped = np.clip(probs, EPS, 1 - EPS)
        out = {"accuracy": float((predicted == labels).mean())}
        out["error_rate"] = 1.0 - out["accuracy"]
        out["log_loss"] = float(-np.log(clipped[np.arange(len(labels)), labels]).mean())
        out["brier"] = float(((probs - onehot) ** 2).sum(axis=1).mean())
        f1s = []
        for c in range(k):
            tp = float(((predicted == c) & (labels == c)).sum())
            actual, guessed = float((labels == c).sum()), float((predicted == c).sum())
            if actual:
                out[f"recall_{c}"] = tp / actual
            if actual or guessed:  # a class neither present nor predicted has no F1
                f1s.append(2 * tp / (actual + guessed))
        out["f1"] = float(np.mean(f1s))
        if k == 2:
            out["roc_auc"] = roc_auc(labels, probs[:, 1])
        return out

    def confusion(self, truth: FloatArray, pred: FloatArray) -> list[list[int]] | None:
        labels = _labels(truth)
        probs = _probs(pred, len(labels))
        k = probs.shape[1]
        counts = np.bincount(labels * k + np.argmax(probs, axis=1), minlength=k * k)
        return [[int(n) for n in row] for row in counts.reshape(k, k)]

    def scalers(self, manifest: ModelManifest, x: FloatArray, y: FloatArray) -> tuple[Scaler, Scaler]:
        from mitiga_core.bundle.manifest import Scaler

        return Scaler.fit(manifest.input_scaler.kind, x), Scaler()

    def targets(self, manifest: ModelManifest, y: FloatArray, scaler: Scaler) -> FloatArray:
        return np.asarray(y, np.float32).reshape(len(y), 1)

    def class_weights(self, y: FloatArray) -> FloatArray | None:
        """When a class is rare (less than ``IMBALANCE`` times as frequent as the commonest), each row weighted by
        the inverse of its class's frequency (mean weight 1), so the rare class counts; None when the classes are
        about even, where weighting would only bend the probabilities (and the gate's log loss) for nothing."""
        labels = _labels(y)
        counts = np.bincount(labels)
        present = counts[counts > 0]
        if present.min() >= IMBALANCE * present.max():
            return None
        weights = len(labels) / (len(present) * counts[labels])
        return weights.astype(np.float32)

    def holdout_mask(self, y: FloatArray, holdout_rows: int, *, spread: float, blocks: int) -> AnyArray:
        """Stratified within the recent period: each class's share of the holdout is its share of that period."""
        from mitiga_core.tasks.holdout import stratified

        return stratified(_labels(y), holdout_rows, spread=spread)


class Binary(Classification):
    name: ClassVar[str] = "binary"
    last_layer: ClassVar[str] = "one sigmoid unit or two softmax units"

    def classes_of(self, activation: str, units: list[int]) -> int | None:
        if activation == "sigmoid" and units == [1]:
            return 2
        return 2 if super().classes_of(activation, units) == 2 else None

    def check(self, manifest: ModelManifest) -> None:
        super().check(manifest)
        if len(manifest.classes) != 2:
            raise ValueError(f"a binary model has two classes, not {len(manifest.classes)}")

    def keras_loss(self, manifest: ModelManifest, units: int) -> str:
        return "binary_crossentropy" if units == 1 else "sparse_categorical_crossentropy"


class Multiclass(Classification):
    name: ClassVar[str] = "multiclass"
    last_layer: ClassVar[str] = "a softmax layer of two or more units"

    def check(self, manifest: ModelManifest) -> None:
        super().check(manifest)
        if len(manifest.classes) < 2:
            raise ValueError(f"a multiclass model has at least two classes, not {len(manifest.classes)}")

    def keras_loss(self, manifest: ModelManifest, units: int) -> str:
        return "sparse_categorical_crossentropy"
