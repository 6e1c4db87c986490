"""Training the reference models on the vendored data, producing complete bundles."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mitiga_core.bundle import Lineage, ModelManifest, Scaler, TrainingData, TrainingInfo, ValidationData
from mitiga_core.metrics import regression_metrics
from mitiga_research.datasets import AIR_QUALITY_FEATURES, AIR_QUALITY_TARGET, sliding_windows
from mitiga_research.modelzoo.architectures import FORECASTERS, build_regressor

if TYPE_CHECKING:
    import keras
    import pandas as pd

    from mitiga_core.types import FloatArray


@dataclass
class TrainedModel:
    """Everything :func:`mitiga_core.bundle.save_bundle` needs."""

    model: keras.Model
    manifest: ModelManifest
    reference: FloatArray
    training: TrainingData
    validation: ValidationData
    """Held-out rows with the model's predictions: the detector's performance estimator is fitted on them."""


def _seeded(seed: int) -> None:
    """Python's, numpy's and the backend's generators from ``seed``: called before a model is built (its initial
    weights) and again before it is fitted (the shuffle), so a training is the same whatever ran before it."""
    import keras

    keras.utils.set_random_seed(seed)


def _fit(model: keras.Model, x: Any, y: FloatArray, epochs: int, batch_size: int, seed: int,
         weights: FloatArray | None = None, loss: str = "mse") -> None:
    import keras

    _seeded(seed)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss)
    model.fit(x, y, sample_weight=weights, epochs=epochs, batch_size=batch_size, verbose=0, shuffle=True)


def _predict(model: keras.Model, x: Any) -> FloatArray:
    return np.asarray(model(x, training=False), dtype=np.float32)


def train_forecaster(
    series: pd.Series,
    *,
    name: str,
    arch: str = "lstm",
    window: int | None = None,
    epochs: int = 5,
    batch_size: int = 32,
    seed: int = 0,
    val_fraction: float = 0.1,
    units: str = "USD",
) -> TrainedModel:
    """Train a univariate next-value forecaster on ``series`` (date index, original units: ``units``, a share price's
    by default).

    The MinMax scaler is fitted on the training part only, never on the validation part.
    """
    if arch not in FORECASTERS:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {sorted(FORECASTERS)}")
    build, default_window = FORECASTERS[arch]
    window = window or default_window
    values = series.to_numpy(dtype=np.float32)
    x_raw, y_raw = sliding_windows(values, window)
    dates = np.asarray(series.index[window:].strftime("%Y-%m-%d"))
    n_val = max(1, int(len(x_raw) * val_fraction))
    if len(x_raw) - n_val < 2:
        raise ValueError(f"too little data: {len(values)} values for window {window}")
    train_end = len(x_raw) - n_val
    scaler = Scaler.fit("minmax", values[: train_end + window].reshape(-1, 1))
    x = scaler.transform(x_raw[..., None])
    y = scaler.transform(y_raw.reshape(-1, 1))
    _seeded(seed)
    model = build(window)
    _fit(model, x[:train_end], y[:train_end], epochs, batch_size, seed)
    pred = scaler.inverse(_predict(model, x))
    metrics = {f"train_{k}": v for k, v in regression_metrics(y_raw[:train_end], pred[:train_end]).items()}
    metrics |= {f"val_{k}": v for k, v in regression_metrics(y_raw[train_end:], pred[train_end:]).items()}
    manifest = ModelManifest(
        name=name, task="forecast", features=[str(series.name or "value")], window=window, units=units,
        outputs=["prediction"], input_scaler=scaler, output_scaler=scaler,
        training=TrainingInfo(architecture=arch, data_start=str(dates[0]), data_end=str(dates[-1]),
                              rows=len(x_raw), epochs=epochs, metrics=metrics),
        lineage=Lineage(trigger="initial"),
    )
    training = TrainingData(x=x_raw, y=y_raw.reshape(-1, 1), dates=dates)
    validation = ValidationData(x=x_raw[train_end:], pred=pred[train_end:], y=y_raw[train_end:].reshape(-1, 1))
    return TrainedModel(model, manifest, values[: train_end + window].reshape(-1, 1), training, validation)


def train_regressor(
    frame: pd.DataFrame,
    *,
    name: str,
    features: list[str] | None = None,
    target: str = AIR_QUALITY_TARGET,
    epochs: int = 20,
    batch_size: int = 64,
    seed: int = 0,
    val_fraction: float = 0.2,
    units: str = "mg/m³",
) -> TrainedModel:
    """Train a tabular regressor; rows with a missing feature or target (the -200 cells) are dropped. ``units``:
    the target's (CO(GT) is in mg/m³)."""
    features = features or list(AIR_QUALITY_FEATURES)
    clean = frame[[*features, target]].dropna()
    if len(clean) < 10:
        raise ValueError(f"too little complete data: {len(clean)} rows")
    x_raw = clean[features].to_numpy(np.float32)
    y_raw = clean[[target]].to_numpy(np.float32)
    dates = np.asarray(clean.index.strftime("%Y-%m-%dT%H:%M:%S"))
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(clean))
    n_val = max(1, int(len(clean) * val_fraction))
    val_idx, train_idx = np.sort(order[:n_val]), np.sort(order[n_val:])
    in_scaler = Scaler.fit("standard", x_raw[train_idx])
    out_scaler = Scaler.fit("standard", y_raw[train_idx])
    _seeded(seed)
    model = build_regressor(len(features))
    _fit(model, in_scaler.transform(x_raw[train_idx]), out_scaler.transform(y_raw[train_idx]), epochs, batch_size, seed)
    pred = out_scaler.inverse(_predict(model, in_scaler.transform(x_raw)))
    metrics = {f"train_{k}": v for k, v in regression_metrics(y_raw[train_idx], pred[train_idx]).items()}
    metrics |= {f"val_{k}": v for k, v in regression_metrics(y_raw[val_idx], pred[val_idx]).items()}
    manifest = ModelManifest(
        name=name, task="regression", features=features, outputs=[target], units=units,
        input_scaler=in_scaler, output_scaler=out_scaler,
        training=TrainingInfo(architecture="dense", data_start=str(dates[0]), data_end=str(dates[-1]),
                              rows=len(clean), epochs=epochs, metrics=metrics),
        lineage=Lineage(trigger="initial"),
    )
    validation = ValidationData(x=x_raw[val_idx], pred=pred[val_idx], y=y_raw[val_idx])
    return TrainedModel(model, manifest, x_raw[train_idx], TrainingData(x=x_raw, y=y_raw, dates=dates), validation)
