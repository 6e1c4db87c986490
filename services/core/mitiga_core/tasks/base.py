"""What a kind of model is, in one object: every question a service would otherwise answer with a branch on the
task. The manifest names its task; :func:`mitiga_core.tasks.task_of` gives the object, and the services ask it:

- **inputs**: how many values a row has, how the request's tensors are laid out (``input_layout``), how rows become
  the Keras model's inputs;
- **outputs**: how the Keras model's outputs become the stored outputs (original units, or probabilities), and how
  those become the answer's tensors;
- **ground truth**: how many values a row's truth has, and what a client may send as truth;
- **errors**: one row's loss (for the concept detectors and the live trial), the window's metrics, which of them are
  compared with the model's own validation value, and which one the gate uses by default;
- **drift**: which columns are tested against the reference;
- **training**: the scalers, the Keras loss and targets, class weights, and how a holdout is cut.

A task object holds no state; the manifest is passed to every question.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Sequence

    from mitiga_core.bundle.manifest import ModelManifest, Scaler
    from mitiga_core.types import AnyArray, FloatArray

Answer = tuple[str, str, "AnyArray"]
"""An answer tensor: name, OIP datatype (``FP32`` or ``BYTES``) and values (float32, or an array of ``bytes``)."""
Direction = Literal["lower", "higher"]


class TruthError(ValueError):
    """Ground truth that does not fit the model; the message names what is wrong (the caller adds where)."""


class Task(ABC):
    name: ClassVar[str]
    input_layout: ClassVar[Literal["window", "table"]] = "table"
    """How a request's tensors are laid out: one window of the series, or a table (one tensor, or one per feature)."""
    joint_drift_tests: ClassVar[bool] = True
    """Whether the multivariate tests (MMD, LSDD) apply: the rows are independent draws of several features."""
    scale_free_signals: ClassVar[bool] = False
    """Whether the error in the data's own units can move with the data's level (a trending series), so only the
    scale-free signals may retrain (``DetectorSettings.forecast_scale_free``)."""
    targets_like_outputs: ClassVar[bool] = True
    """Whether training targets look like the stored outputs (numbers), so that they can stand in for the model's
    predictions as the prediction-drift reference; a classifier's targets are classes, its outputs probabilities."""
    ratio_metrics: ClassVar[tuple[str, ...]]
    """Metrics compared with the model's validation value as ``<metric>_ratio`` signals (every one: higher is worse)."""
    gate_metrics: ClassVar[dict[str, Direction]]
    """The metrics the retrainer's gate may use, each with its better direction; the first is the default."""
    estimated_metric: ClassVar[str]
    """The metric estimated before labels (``estimated_<metric>_ratio``)."""

    # --- the manifest ---
    def check(self, manifest: ModelManifest) -> None:
        """Raise ValueError when the manifest does not describe a model of this task."""
        if manifest.window is not None:
            raise ValueError(f"a {self.name} model has no window")
        if manifest.classes:
            raise ValueError(f"a {self.name} model has no classes")

    def input_width(self, manifest: ModelManifest) -> int:
        """Values in one input row."""
        return len(manifest.features)

    @property
    def input_name(self) -> str:
        return "features"

    def layout(self, manifest: ModelManifest) -> Literal["window", "table", "inputs"]:
        """How a request's tensors are laid out: ``input_layout``, or one tensor per named input of a model with
        several."""
        return "inputs" if manifest.inputs else self.input_layout

    def model_dims(self, manifest: ModelManifest) -> list[list[int]]:
        """The Keras input shapes (without the batch) a model of this manifest may have (one input)."""
        return [[len(manifest.features)]]

    def model_inputs(self, manifest: ModelManifest, x: FloatArray,
                     scaler: Scaler | None = None) -> FloatArray | dict[str, FloatArray]:
        """Rows in original units ``(rows, input_width)`` as the Keras model takes them: scaled, and split by name
        for a model with several inputs."""
        scaled = (scaler or manifest.input_scaler).transform(x)
        return manifest.split_inputs(scaled) if manifest.inputs else scaled

    def reference_columns(self, manifest: ModelManifest) -> int:
        """Columns of the drift reference (``reference.npy``)."""
        return len(manifest.features)

    def drift_columns(self, inputs: FloatArray) -> FloatArray:
        """The columns of input rows tested for data drift."""
        return inputs

    def naive(self, inputs: FloatArray) -> FloatArray | None:
        """A baseline prediction from the inputs alone (the forecast's "tomorrow = today"), if the task has one."""
        return None

    def prediction_columns(self, outputs: FloatArray) -> tuple[FloatArray, list[int]]:
        """The columns of stored outputs tested for prediction drift, and which of them are categorical (χ²)."""
        return outputs, []

    # --- outputs ---
    @abstractmethod
    def output_width(self, manifest: ModelManifest) -> int:
        """Columns of the stored outputs (an inference event's ``outputs``)."""

    @abstractmethod
    def outputs(self, manifest: ModelManifest, y: AnyArray, scaler: Scaler | None = None) -> FloatArray:
        """The Keras model's outputs as stored ``(rows, output_width)``: original units, or probabilities."""

    @abstractmethod
    def answers(self, manifest: ModelManifest, outputs: FloatArray) -> list[Answer]:
        """Every tensor the model answers with, from its stored outputs."""

    @abstractmethod
    def answer_metadata(self, manifest: ModelManifest) -> list[tuple[str, str, list[int]]]:
        """The answer tensors' names, datatypes and shapes (-1 for the rows), for the model's metadata."""

    # --- ground truth ---
    @abstractmethod
    def truth_width(self, manifest: ModelManifest) -> int:
        """Values of ground truth per row."""

    @abstractmethod
    def truth(self, manifest: ModelManifest, values: Sequence[Any]) -> list[float]:
        """The values a client sent as one request's ground truth, as the floats the feedback event carries; raise
        TruthError when they are not truth this model can take (the caller checks the count)."""

    # --- errors ---
    @abstractmethod
    def row_loss(self, manifest: ModelManifest, truth: FloatArray, pred: FloatArray) -> FloatArray:
        """Each row's loss, comparable across rows and versions (what the concept detectors and a live trial see)."""

    @abstractmethod
    def scores(self, truth: FloatArray, pred: FloatArray) -> dict[str, float]:
        """The window's metrics in original units (``mae``, ...; ``accuracy``, ...)."""

    def metrics(self, manifest: ModelManifest, truth: FloatArray, pred: FloatArray) -> dict[str, dict[str, float]]:
        """The metrics in ``original`` units and in the model's ``scaled`` units (the same when it has none)."""
        found = self.scores(truth, pred)
        return {"original": found, "scaled": found}

    def error_stream(self, manifest: ModelManifest, truth: FloatArray, pred: FloatArray) -> FloatArray:
        """Each row's error as the error-stream (concept) detector reads it: here its ``row_loss``."""
        return self.row_loss(manifest, truth, pred)

    root_metrics: ClassVar[frozenset[str]] = frozenset()
    """Ratio metrics that are the square root of their rows' mean (RMSE)."""

    def ratio_rows(self, manifest: ModelManifest, truth: FloatArray, pred: FloatArray) -> dict[str, FloatArray]:
        """Each row's share of every ``ratio_metrics`` metric (and of ``estimated_metric``), in original units: the
        metric is their mean, or the mean's square root for ``root_metrics``. The detector weighs a ratio by how many
        rows stand behind it (:mod:`mitiga_detector.evidence`). Here: the absolute and the squared error."""
        diff = (np.asarray(pred, np.float64) - np.asarray(truth, np.float64)).reshape(len(truth), -1)
        return {"mae": np.abs(diff).mean(axis=1), "rmse": (diff**2).mean(axis=1)}

    def row_estimand(self, truth: FloatArray, pred: FloatArray) -> FloatArray:
        """Each row's realised value of ``estimated_metric``, to measure the estimate once labels come (here: the
        absolute error in original units, averaged over the outputs)."""
        return np.abs(np.asarray(truth, np.float64) - np.asarray(pred, np.float64)).reshape(len(truth), -1).mean(1)

    def request_loss(self, manifest: ModelManifest, truth: FloatArray, pred: FloatArray, *,
                     squared: bool = False) -> float:
        """One request's error, to pair a champion's with a candidate's on a live trial (here: the mean absolute or
        squared error in original units)."""
        diff = np.asarray(pred, np.float64).reshape(-1) - np.asarray(truth, np.float64).reshape(-1)
        return float(np.mean(diff**2) if squared else np.mean(np.abs(diff)))

    def confusion(self, truth: FloatArray, pred: FloatArray) -> list[list[int]] | None:
        """Rows of the true class, columns of the predicted one, if the task has classes."""
        return None

    def better(self, metric: str, new: float, old: float) -> bool:
        """Whether ``new`` is strictly better than ``old`` on ``metric``."""
        return new > old if self.gate_metrics[metric] == "higher" else new < old

    # --- training ---
    def scalers(self, manifest: ModelManifest, x: FloatArray, y: FloatArray) -> tuple[Scaler, Scaler]:
        """Scalers of the champion's kinds, fitted on the new training set only."""
        from mitiga_core.bundle.manifest import Scaler

        return Scaler.fit(manifest.input_scaler.kind, x), Scaler.fit(manifest.output_scaler.kind, y)

    @abstractmethod
    def keras_loss(self, manifest: ModelManifest, units: int) -> str:
        """The loss a challenger trains with, for a model whose last layer has ``units`` outputs."""

    @abstractmethod
    def targets(self, manifest: ModelManifest, y: FloatArray, scaler: Scaler) -> FloatArray:
        """Ground truth as the Keras model is trained on it."""

    def class_weights(self, y: FloatArray) -> FloatArray | None:
        """A weight per row that balances the classes, if the task has classes."""
        return None

    def holdout_mask(self, y: FloatArray, holdout_rows: int, *, spread: float, blocks: int) -> AnyArray:
        """True for the gate's holdout among date-ordered rows (time order: contiguous blocks of the recent rows)."""
        from mitiga_core.tasks.holdout import time_blocks

        return time_blocks(len(y), holdout_rows, spread=spread, blocks=blocks)
