"""``regression``: a table of features in, one or more numbers out (original units through the output scaler)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from mitiga_core.metrics import regression_metrics
from mitiga_core.tasks.base import Answer, Direction, Task, TruthError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from mitiga_core.bundle.manifest import ModelManifest, Scaler
    from mitiga_core.types import AnyArray, FloatArray


class Regression(Task):
    name: ClassVar[str] = "regression"
    ratio_metrics: ClassVar[tuple[str, ...]] = ("mae", "rmse")
    root_metrics: ClassVar[frozenset[str]] = frozenset({"rmse"})
    gate_metrics: ClassVar[dict[str, Direction]] = {"mae": "lower", "rmse": "lower", "mse": "lower"}
    estimated_metric: ClassVar[str] = "mae"

    def output_width(self, manifest: ModelManifest) -> int:
        return len(manifest.outputs)

    def outputs(self, manifest: ModelManifest, y: AnyArray, scaler: Scaler | None = None) -> FloatArray:
        return (scaler or manifest.output_scaler).inverse(np.asarray(y, np.float32).reshape(len(y), -1))

    def _names(self, manifest: ModelManifest, width: int) -> list[str]:
        return manifest.outputs if len(manifest.outputs) == width else [f"output_{i}" for i in range(width)]

    def answers(self, manifest: ModelManifest, outputs: FloatArray) -> list[Answer]:
        """One FP32 ``(rows, 1)`` tensor per output, named as the manifest names them."""
        names = self._names(manifest, outputs.shape[1])
        return [(name, "FP32", np.ascontiguousarray(outputs[:, [i]], np.float32)) for i, name in enumerate(names)]

    def answer_metadata(self, manifest: ModelManifest) -> list[tuple[str, str, list[int]]]:
        return [(name, "FP32", [-1, 1]) for name in manifest.outputs]

    def truth_width(self, manifest: ModelManifest) -> int:
        return len(manifest.outputs)

    def truth(self, manifest: ModelManifest, values: Sequence[Any]) -> list[float]:
        bad = [v for v in values if isinstance(v, bool) or not isinstance(v, int | float)]
        if bad:
            raise TruthError(f"must be numbers for a {self.name} model, got {bad[0]!r}")
        return [float(v) for v in values]

    def row_loss(self, manifest: ModelManifest, truth: FloatArray, pred: FloatArray) -> FloatArray:
        """The absolute error in the model's scaled units, averaged over the outputs."""
        scaler = manifest.output_scaler
        return np.abs(scaler.transform(truth) - scaler.transform(pred)).reshape(len(truth), -1).mean(axis=1)

    def scores(self, truth: FloatArray, pred: FloatArray) -> dict[str, float]:
        return regression_metrics(truth, pred)

    def metrics(self, manifest: ModelManifest, truth: FloatArray, pred: FloatArray) -> dict[str, dict[str, float]]:
        scaler = manifest.output_scaler
        return {"original": regression_metrics(truth, pred),
                "scaled": regression_metrics(scaler.transform(truth), scaler.transform(pred))}

    def keras_loss(self, manifest: ModelManifest, units: int) -> str:
        return "mse"

    def targets(self, manifest: ModelManifest, y: FloatArray, scaler: Scaler) -> FloatArray:
        return scaler.transform(y)
