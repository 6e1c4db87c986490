"""The other kinds of model mitiga serves, trained on the vendored Air Quality data as a team would train them:

- a **classifier** of the hourly CO level (low / moderate / high, from the sensors and the weather): softmax,
  class-weighted, its held-out rows (probabilities and true classes) kept for the detector's CBPE;
- a **two-input** regressor of CO whose inputs are named ``sensors`` and ``weather``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import numpy as np

from mitiga_core.bundle import (
    Lineage,
    ModelInput,
    ModelManifest,
    Scaler,
    TrainingData,
    TrainingInfo,
    ValidationData,
)
from mitiga_core.tasks import task_of
from mitiga_research.datasets import AIR_QUALITY_FEATURES, AIR_QUALITY_TARGET
from mitiga_research.modelzoo.architectures import build_classifier, build_two_input
from mitiga_research.modelzoo.training import TrainedModel, _fit, _predict, _seeded

if TYPE_CHECKING:
    import pandas as pd

    from mitiga_core.types import AnyArray

CO_CLASSES: Final = ["low", "moderate", "high"]
CO_LEVELS: Final = (1.5, 3.0)
"""CO(GT) in mg/m³ that separates low from moderate, and moderate from high."""
SENSORS: Final = AIR_QUALITY_FEATURES[:5]
WEATHER: Final = AIR_QUALITY_FEATURES[5:]


def labelled(frame: pd.DataFrame, features: list[str]) -> tuple[AnyArray, AnyArray, AnyArray]:
    """Complete rows: the features, the CO class (as a column) and the ISO time of each."""
    import pandas as pd


    classes = pd.Series(np.digitize(frame[AIR_QUALITY_TARGET].fillna(-1), CO_LEVELS), index=frame.index)
    clean = frame[features].assign(_class=classes.where(frame[AIR_QUALITY_TARGET].notna())).dropna()
    return (clean[features].to_numpy(np.float32), clean[["_class"]].to_numpy(np.float32),
            np.asarray(clean.index.strftime("%Y-%m-%dT%H:%M:%S")))


def _split(n: int, seed: int, val_fraction: float) -> tuple[AnyArray, AnyArray]:
    order = np.random.default_rng(seed).permutation(n)
    n_val = max(1, int(n * val_fraction))
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def train_classifier(frame: pd.DataFrame, *, name: str, epochs: int = 20, batch_size: int = 64, seed: int = 0,
                     val_fraction: float = 0.2) -> TrainedModel:
    """The hourly CO level from the sensors and the weather; rows with a missing cell are dropped."""
    features = list(AIR_QUALITY_FEATURES)
    x, y, dates = labelled(frame, features)
    if len(x) < 10:
        raise ValueError(f"too little complete data: {len(x)} rows")
    train_idx, val_idx = _split(len(x), seed, val_fraction)
    kind = task_of("multiclass")
    scaler = Scaler.fit("standard", x[train_idx])
    _seeded(seed)
    model = build_classifier(len(features), len(CO_CLASSES))
    _fit(model, scaler.transform(x[train_idx]), y[train_idx], epochs, batch_size, seed,
         weights=kind.class_weights(y[train_idx]), loss="sparse_categorical_crossentropy")
    pred = _predict(model, scaler.transform(x))
    metrics = {f"train_{k}": v for k, v in kind.scores(y[train_idx], pred[train_idx]).items()}
    metrics |= {f"val_{k}": v for k, v in kind.scores(y[val_idx], pred[val_idx]).items()}
    manifest = ModelManifest(
        name=name, task="multiclass", features=features, classes=list(CO_CLASSES), input_scaler=scaler,
        training=TrainingInfo(architecture="dense-softmax", data_start=str(dates[0]), data_end=str(dates[-1]),
                              rows=len(x), epochs=epochs, metrics=metrics),
        lineage=Lineage(trigger="initial"),
    )
    validation = ValidationData(x=x[val_idx], pred=pred[val_idx], y=y[val_idx])
    return TrainedModel(model, manifest, x[train_idx], TrainingData(x=x, y=y, dates=dates), validation)


def train_two_input(frame: pd.DataFrame, *, name: str, epochs: int = 20, batch_size: int = 64, seed: int = 0,
                    val_fraction: float = 0.2) -> TrainedModel:
    """CO(GT) from two named inputs: ``sensors`` (the five metal-oxide responses) and ``weather`` (T, RH, AH)."""
    clean = frame[[*SENSORS, *WEATHER, AIR_QUALITY_TARGET]].dropna()
    x = clean[[*SENSORS, *WEATHER]].to_numpy(np.float32)
    y = clean[[AIR_QUALITY_TARGET]].to_numpy(np.float32)
    dates = np.asarray(clean.index.strftime("%Y-%m-%dT%H:%M:%S"))
    train_idx, val_idx = _split(len(x), seed, val_fraction)
    inputs = [ModelInput(name="sensors", shape=[len(SENSORS)]), ModelInput(name="weather", shape=[len(WEATHER)])]
    manifest = ModelManifest(
        name=name, task="regression", units="mg/m³",
        features=[f"sensors.{f}" for f in SENSORS] + [f"weather.{f}" for f in WEATHER],
        inputs=inputs, outputs=[AIR_QUALITY_TARGET], input_scaler=Scaler.fit("standard", x[train_idx]),
        output_scaler=Scaler.fit("standard", y[train_idx]), lineage=Lineage(trigger="initial"))
    _seeded(seed)
    model = build_two_input({i.name: i.width for i in inputs})
    _fit(model, manifest.model_inputs(x[train_idx]), manifest.output_scaler.transform(y[train_idx]), epochs,
         batch_size, seed)
    pred = manifest.output_values(_predict(model, manifest.model_inputs(x)))
    kind = manifest.kind
    metrics = {f"train_{k}": v for k, v in kind.scores(y[train_idx], pred[train_idx]).items()}
    metrics |= {f"val_{k}": v for k, v in kind.scores(y[val_idx], pred[val_idx]).items()}
    manifest = manifest.model_copy(update={"training": TrainingInfo(
        architecture="dense-two-input", data_start=str(dates[0]), data_end=str(dates[-1]), rows=len(x),
        epochs=epochs, metrics=metrics)})
    validation = ValidationData(x=x[val_idx], pred=pred[val_idx], y=y[val_idx])
    return TrainedModel(model, manifest, x[train_idx], TrainingData(x=x, y=y, dates=dates), validation)
