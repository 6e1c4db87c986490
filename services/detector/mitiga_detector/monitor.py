"""What the detector knows about one served model version: its reference, its tests and its open window."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from mitiga_core.bundle import read_manifest, read_reference, read_training, read_validation
from mitiga_detector.distances import ReferenceDistances
from mitiga_detector.engines import UnivariateEngine, make_engine
from mitiga_detector.estimation import Estimator, OutlierScorer, make_estimator
from mitiga_detector.evidence import Mean, reference_means, z_score
from mitiga_detector.performance import PerformanceWindow
from mitiga_detector.sequential import SequentialDetector
from mitiga_detector.windows import WindowBuffer

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from mitiga_core.bundle import ModelManifest, ValidationData
    from mitiga_core.store import ModelStore
    from mitiga_core.types import FloatArray
    from mitiga_detector.settings import DetectorSettings, Level
    from mitiga_detector.windows import Window


def input_features(manifest: ModelManifest, inputs: FloatArray) -> FloatArray:
    """The columns tested for data drift, as the model's task chooses them (a forecast window's newest value: the
    series' new observation; a table's every column)."""
    return manifest.kind.drift_columns(inputs)


@dataclass
class ModelMonitor:
    manifest: ModelManifest
    reference: FloatArray
    """The reference sample sorted by column: every test that keeps it compares one feature at a time (the joint
    rows are used once, to fit the sequential test's scale, the outlier forest and the online detectors)."""
    inputs: UnivariateEngine
    outputs: UnivariateEngine | None
    window: WindowBuffer
    performance: PerformanceWindow
    mmd_reference: FloatArray
    distances: ReferenceDistances
    mmd: Any = None
    online: Any = None
    sequential: SequentialDetector | None = None
    estimator: Estimator | None = None
    outliers: OutlierScorer | None = None
    windows_seen: int = 0
    in_units: dict[str, float] = field(default_factory=dict)
    """The realised errors of the labelled window in the model's own units (``manifest.units``), as people read them."""
    reference_errors: dict[str, Mean] = field(default_factory=dict)
    """The model's own error on its held-out rows per ratio metric, with its standard error (``evidence``)."""
    reference_skill: float | None = None
    """Forecast models: the validation rows' MAE over the naive forecast's ("tomorrow = today") MAE."""
    exported_features: list[str] = field(default_factory=list)
    """The features whose per-feature series the last window exported (``settings.feature_series``)."""
    levels_to_show: dict[str, Level] = field(default_factory=dict)
    """Configured levels not exported yet: a metric's levels are, with its first value (a model exports the levels
    of the metrics it has, not of every metric a task may have)."""
    alarms: set[str] = field(default_factory=set)
    """Row-level detectors (``online``, ``sequential``) that alarmed since the last window closed."""

    @property
    def feature_names(self) -> list[str]:
        return self.manifest.features

    def observe(self, served: Sequence[tuple[FloatArray, FloatArray, datetime]]) -> tuple[list[Window], Counter[str]]:
        """Rows served, one (inputs, outputs, time) per event in order: fed to the row-level detectors and the open
        window. Returns the windows they closed (full, or early on a sequential alarm once a window holds its minimum
        rows), each with the row-level detectors that alarmed on it, and the events each detector alarmed on. The
        sequential test takes the rows of every event at once (its cost is per call, not per row)."""
        features = [input_features(self.manifest, inputs) for inputs, _, _ in served]
        alarmed: dict[int, set[str]] = {}
        if self.online is not None:  # its state moves event by event
            for i, rows in enumerate(features):
                if self.online.update(rows):
                    alarmed.setdefault(i, set()).add("online")
        if self.sequential is not None and features:
            ends = np.cumsum([len(rows) for rows in features])
            for row in self.sequential.update(np.concatenate(features) if len(features) > 1 else features[0]):
                alarmed.setdefault(int(np.searchsorted(ends, row, side="right")), set()).add("sequential")
        windows = []
        for i, (rows, (_, outputs, when)) in enumerate(zip(features, served, strict=True)):
            self.alarms.update(alarmed.get(i, ()))
            window = self.window.add(rows, outputs, when)
            if window is None and "sequential" in self.alarms:  # the verdict need not wait for a full window
                window = self.window.close()
            if window is not None:
                window.alarms, self.alarms = frozenset(self.alarms), set()
                windows.append(window)
        return windows, Counter(name for names in alarmed.values() for name in names)

    def label(self, inputs: FloatArray, outputs: FloatArray, truth: FloatArray) -> None:
        """A prediction's ground truth arrived: its error (and what the loss model estimated it would be, and the
        naive forecast's error for a forecast model) joins the labelled window."""
        estimated = None
        if self.estimator is not None:
            estimated = self.estimator.rows(input_features(self.manifest, inputs), outputs)
        naive = self.manifest.kind.naive(inputs)  # a forecast's "tomorrow = today"
        self.performance.add(truth, outputs, self.manifest, estimated, naive)

    def restart(self, settings: DetectorSettings) -> None:
        """Forget what the stream built up (the window, the labelled window, the counts, the sequential test's
        statistics), to be restored from a checkpoint; keep what was fitted on the bundle."""
        self.window = WindowBuffer(settings.window_size, settings.window_seconds, settings.min_window_rows)
        self.performance = PerformanceWindow(settings.performance_window, settings.concept_detector,
                                             self.performance.errors.floor, z_score(settings.ratio_confidence))
        self.windows_seen = 0
        self.alarms = set()
        if self.sequential is not None:
            self.sequential.restart()

    def levels(self, defaults: dict[str, Level], overrides: dict[str, float] | None = None) -> dict[str, Level]:
        """Settings' levels, then the manifest's per-model overrides (``{"mae.critical": 0.4, ...}``), then the
        settings' per-model overrides."""
        merged = {name: level.model_copy() for name, level in defaults.items()}
        for key, value in {**self.manifest.thresholds, **(overrides or {})}.items():
            metric, _, which = key.partition(".")
            if metric in merged and which in ("warning", "critical"):
                merged[metric] = merged[metric].model_copy(update={which: value})
        return merged


def loss_floor(manifest: ModelManifest, validation: ValidationData | None, confidence: float) -> float:
    """The upper bound of the model's mean per-row loss on its held-out rows (0 without them): the error-stream
    detector's alarms count above it."""
    if validation is None or not len(validation.y):
        return 0.0
    held = Mean.of(manifest.kind.error_stream(manifest, validation.y, validation.pred))
    return held.value + z_score(confidence) * held.se if np.isfinite(held.se) else held.value


def build_monitor(store: ModelStore, name: str, version: str, settings: DetectorSettings) -> ModelMonitor:
    """Load a version's manifest and reference sample; raises ModelNotFound or BundleError."""
    folder = store.path(name, version)
    manifest = read_manifest(folder)
    reference = read_reference(folder)
    training = read_training(folder)
    if reference is None:
        if training is None:
            from mitiga_core.errors import BundleError

            raise BundleError(f"model {name!r} version {version} has no reference sample to test drift against")
        reference = input_features(manifest, training.x)
    engine_args = {"test": settings.test, "p_val": settings.p_val, "correction": settings.correction}
    categorical = [manifest.features.index(f) for f in manifest.categorical]
    ordered = np.sort(reference, axis=0)  # one copy, shared by the per-feature tests
    inputs = make_engine(settings.engine, ordered, categorical=categorical, **engine_args)  # type: ignore[arg-type]
    validation = read_validation(folder)
    # prediction drift compares predictions with the model's own predictions on held-out rows when the bundle has
    # them (a model's predictions are smoother than its targets), else with the training targets if they look alike
    predicted = validation.pred if validation is not None else None
    if predicted is None and training is not None and manifest.kind.targets_like_outputs:
        predicted = training.y
    outputs = None
    if predicted is not None:
        columns, classes = manifest.kind.prediction_columns(predicted)
        outputs = make_engine(settings.engine, columns, categorical=classes, **engine_args)  # type: ignore[arg-type]
    rng = np.random.default_rng(0)
    pool = training.x if training is not None else reference
    mmd_reference = pool[rng.choice(len(pool), size=min(len(pool), 500), replace=False)]
    estimator = None
    if settings.estimate_performance and validation is not None and len(validation.x) >= 20:
        estimator = make_estimator(manifest, input_features(manifest, validation.x), validation.pred, validation.y)
    reference_skill = None
    naive_pred = manifest.kind.naive(validation.x) if validation is not None and len(validation.x) else None
    if validation is not None and naive_pred is not None:
        naive = float(np.abs(validation.y.reshape(-1) - naive_pred.reshape(-1)).mean())
        model = float(np.abs(validation.y.reshape(-1) - validation.pred.reshape(-1)).mean())
        reference_skill = model / naive if naive > 0 and model > 0 else None
    references = reference_means(manifest, validation.y if validation is not None else None,
                                 validation.pred if validation is not None else None)
    online = None
    if settings.online != "none":
        from mitiga_detector.multivariate import OnlineDetector

        online = OnlineDetector(settings.online, reference, ert=settings.online_ert, window=settings.online_window,
                                bootstraps=settings.online_bootstraps)
    return ModelMonitor(
        manifest=manifest, reference_skill=reference_skill, reference_errors=references, reference=ordered,
        inputs=inputs, outputs=outputs,
        online=online,
        window=WindowBuffer(settings.window_size, settings.window_seconds, settings.min_window_rows),
        performance=PerformanceWindow(settings.performance_window, settings.concept_detector,
                                      loss_floor(manifest, validation, settings.ratio_confidence),
                                      z_score(settings.ratio_confidence)),
        mmd_reference=mmd_reference,
        distances=ReferenceDistances(ordered),
        sequential=SequentialDetector(reference, arl=settings.sequential_arl, sorted_reference=ordered)
        if settings.sequential else None,
        estimator=estimator,
        outliers=OutlierScorer(reference, engine=settings.engine, quantile=settings.outlier_quantile)
        if settings.outliers else None,
    )
