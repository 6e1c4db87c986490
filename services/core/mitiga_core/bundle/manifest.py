"""The manifest of a model version: what it takes, what it returns, how it was made."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from mitiga_core.tasks import TaskName, task_of
from mitiga_core.types import FloatArray  # noqa: TC001 - used at run time by pydantic

if TYPE_CHECKING:
    from mitiga_core.tasks import Task


class Scaler(BaseModel):
    """An affine transform fitted on training data only: ``scaled = (x - offset) / scale``."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["none", "minmax", "standard"] = "none"
    offset: list[float] = Field(default_factory=list)
    scale: list[float] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> Scaler:
        if self.kind == "none" and (self.offset or self.scale):
            raise ValueError("a 'none' scaler takes no offset or scale")
        if self.kind != "none":
            if not self.offset or len(self.offset) != len(self.scale):
                raise ValueError("offset and scale must be non-empty and of equal length")
            if any(s == 0 or not np.isfinite(s) for s in self.scale):
                raise ValueError("scale values must be finite and non-zero")
        return self

    @classmethod
    def fit(cls, kind: Literal["none", "minmax", "standard"], data: FloatArray) -> Scaler:
        """Fit per column on ``data`` (rows x columns); a constant column gets scale 1."""
        if kind == "none":
            return cls()
        cols = np.asarray(data, dtype=np.float64).reshape(len(data), -1)
        if kind == "minmax":
            offset, span = cols.min(axis=0), cols.max(axis=0) - cols.min(axis=0)
        else:
            offset, span = cols.mean(axis=0), cols.std(axis=0)
        span = np.where(span == 0, 1.0, span)
        return cls(kind=kind, offset=offset.tolist(), scale=span.tolist())

    def transform(self, x: FloatArray) -> FloatArray:
        if self.kind == "none":
            return x
        return ((x - np.asarray(self.offset, np.float32)) / np.asarray(self.scale, np.float32)).astype(np.float32)

    def inverse(self, y: FloatArray) -> FloatArray:
        if self.kind == "none":
            return y
        return (y * np.asarray(self.scale, np.float32) + np.asarray(self.offset, np.float32)).astype(np.float32)


class TrainingInfo(BaseModel):
    architecture: str = "unknown"
    data_start: str | None = None
    data_end: str | None = None
    rows: int = 0
    epochs: int = 0
    metrics: dict[str, float] = Field(default_factory=dict)
    """Training and validation metrics, e.g. ``val_mae``, ``val_r2``, in original units."""

    def reference_error(self, metric: str) -> float | None:
        """The model's own error on data it never trained on: ``val_<metric>`` from initial training, else
        ``holdout_<metric>`` from the retrainer's gate. Relative alert levels are multiples of it."""
        for key in (f"val_{metric}", f"holdout_{metric}"):
            value = self.metrics.get(key)
            if value is not None and np.isfinite(value) and value > 0:
                return float(value)
        return None


class Lineage(BaseModel):
    parent: str | None = None
    trigger: str = "initial"
    """initial | import | informed | blind | manual"""
    episode_id: str | None = None
    strategy: str | None = None
    mode: str | None = None


class ModelInput(BaseModel):
    """One named input of a model with several: its shape per row (without the batch)."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")
    shape: list[int] = Field(min_length=1, max_length=4)

    @property
    def width(self) -> int:
        """Values per row: the input's columns in the manifest's flat rows."""
        return int(np.prod(self.shape))


class ModelManifest(BaseModel):
    """Stored as ``manifest.json`` next to ``model.keras`` in each version folder."""

    model_config = ConfigDict(extra="forbid")

    name: str
    version: str = "0"
    task: TaskName
    features: list[str]
    """Input column names. A forecast model has one: the series it forecasts."""
    window: int | None = None
    """Forecast models: how many past values form one input row."""
    inputs: list[ModelInput] = Field(default_factory=list)
    """Models with several named inputs: each input in order. A row of ``features`` is their values one after the
    other (each input's values row-major), named ``input.feature``; the Keras model takes them as a dict by name.
    Empty for a model with one input."""
    categorical: list[str] = Field(default_factory=list)
    """Features that take a few discrete values (codes, counts): their drift is tested with χ², not KS."""
    outputs: list[str] = Field(default_factory=lambda: ["prediction"])
    """Regression and forecast models: the names of the numbers they answer."""
    classes: list[str] = Field(default_factory=list)
    """Classifiers: the class names, in the order of the model's probabilities."""
    units: str = Field(default="", max_length=32)
    """What the model's answers (and so its errors) are measured in, as people read them: ``USD``, ``mg/m³``. Set at
    training or upload; empty for a classifier or when unknown."""
    input_scaler: Scaler = Field(default_factory=Scaler)
    output_scaler: Scaler = Field(default_factory=Scaler)
    training: TrainingInfo = Field(default_factory=TrainingInfo)
    lineage: Lineage = Field(default_factory=Lineage)
    reference_rows: int = 0
    """Rows in ``reference.npy``: training inputs (original units) that drift is tested against."""
    thresholds: dict[str, float] = Field(default_factory=dict)
    """Per-model overrides of the detector's alert levels."""
    created_at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat())

    @model_validator(mode="after")
    def _check(self) -> ModelManifest:
        if not self.features:
            raise ValueError("features must not be empty")
        if len(set(self.features)) != len(self.features):
            raise ValueError("feature names must be unique")
        if unknown := sorted(set(self.categorical) - set(self.features)):
            raise ValueError(f"categorical names features the model does not have: {unknown}")
        if self.inputs:
            if len(self.inputs) < 2 or len({i.name for i in self.inputs}) != len(self.inputs):
                raise ValueError("inputs: a model with several inputs names two or more, each once")
            if any(d < 1 for i in self.inputs for d in i.shape):
                raise ValueError("inputs: every dimension of an input's shape must be at least 1")
            width = sum(i.width for i in self.inputs)
            if width != len(self.features):
                raise ValueError(f"inputs: {width} values per row, but {len(self.features)} features are named")
        self.kind.check(self)
        return self

    @property
    def kind(self) -> Task:
        """The task's object: what the services ask instead of branching on ``task``."""
        return task_of(self.task)

    @property
    def input_width(self) -> int:
        """Values in one input row: a forecast model's window, else its number of features."""
        return self.kind.input_width(self)

    @property
    def input_shape(self) -> list[int]:
        """The OIP input tensor shape, -1 for the batch dimension."""
        return [-1, self.input_width]

    def model_inputs(self, x: FloatArray, scaler: Scaler | None = None) -> FloatArray | dict[str, FloatArray]:
        """Input rows in original units, ``(rows, input_width)``, as the Keras model takes them: scaled (with the
        manifest's own scaler unless given another, a challenger's), a forecast window as ``(rows, window, 1)``."""
        return self.kind.model_inputs(self, x, scaler)

    def output_values(self, y: FloatArray, scaler: Scaler | None = None) -> FloatArray:
        """The Keras model's outputs as stored, ``(rows, output_width)``: original units, or a classifier's
        probabilities."""
        return self.kind.outputs(self, y, scaler)

    @property
    def input_name(self) -> str:
        return self.kind.input_name

    def split_inputs(self, x: FloatArray) -> dict[str, FloatArray]:
        """Flat rows ``(rows, features)`` as a dict of each model input's values ``(rows, *shape)``."""
        out, at = {}, 0
        for i in self.inputs:
            out[i.name] = np.ascontiguousarray(x[:, at:at + i.width].reshape(len(x), *i.shape))
            at += i.width
        return out

    def input_features(self, name: str) -> list[str]:
        """The features (flat columns) of one model input."""
        at = 0
        for i in self.inputs:
            if i.name == name:
                return self.features[at:at + i.width]
            at += i.width
        raise KeyError(name)
