"""``forecast``: a window of one series' past values in, its next value out. The window's newest value is the series'
new observation (the drift column), and "tomorrow = today" is the naive forecast the model's skill is measured
against."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

import numpy as np

from mitiga_core.tasks.regression import Regression

if TYPE_CHECKING:
    from mitiga_core.bundle.manifest import ModelManifest, Scaler
    from mitiga_core.types import FloatArray


class Forecast(Regression):
    name: ClassVar[str] = "forecast"
    input_layout: ClassVar[Literal["window", "table"]] = "window"
    joint_drift_tests: ClassVar[bool] = False  # a window's values are one series, not independent features
    scale_free_signals: ClassVar[bool] = True

    def check(self, manifest: ModelManifest) -> None:
        if manifest.window is None or manifest.window < 1:
            raise ValueError("a forecast model needs a positive window")
        if len(manifest.features) != 1:
            raise ValueError("a forecast model has exactly one feature (its series)")
        if manifest.classes:
            raise ValueError("a forecast model has no classes")
        if manifest.inputs:
            raise ValueError("a forecast model has one input, its window (a model with several inputs is a "
                             "regression or a classifier)")

    def input_width(self, manifest: ModelManifest) -> int:
        return manifest.window or 1

    @property
    def input_name(self) -> str:
        return "window"

    def model_dims(self, manifest: ModelManifest) -> list[list[int]]:
        return [[self.input_width(manifest), 1], [self.input_width(manifest)]]

    def model_inputs(self, manifest: ModelManifest, x: FloatArray, scaler: Scaler | None = None) -> FloatArray:
        """A window as ``(rows, window, 1)``, scaled."""
        return (scaler or manifest.input_scaler).transform(x[..., None])

    def reference_columns(self, manifest: ModelManifest) -> int:
        return 1

    def drift_columns(self, inputs: FloatArray) -> FloatArray:
        """Each row is a window of the series; its newest value is the series' new observation."""
        return inputs[:, -1:]

    def naive(self, inputs: FloatArray) -> FloatArray | None:
        return inputs[:, -1:]

    def scalers(self, manifest: ModelManifest, x: FloatArray, y: FloatArray) -> tuple[Scaler, Scaler]:
        """One scaler for the series, in and out."""
        from mitiga_core.bundle.manifest import Scaler

        values = np.concatenate([x.reshape(-1), y.reshape(-1)]).reshape(-1, 1)
        scaler = Scaler.fit(manifest.input_scaler.kind, values)
        return scaler, scaler
