"""Training a challenger from the champion's bundle: refitted preprocessing, warm start or reset, progress."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from collections.abc import Callable

    import keras

    from mitiga_core.bundle import ModelManifest, Scaler
    from mitiga_core.types import FloatArray
    from mitiga_retrainer.strategies import TrainingSet

log = logging.getLogger(__name__)
Mode = Literal["warm_start", "reset"]


def refit_scalers(manifest: ModelManifest, train: TrainingSet) -> tuple[Scaler, Scaler]:
    """Scalers of the same kinds as the champion's, fitted on the new training set only."""
    return manifest.kind.scalers(manifest, train.x, train.y)


def predict(model: keras.Model, manifest: ModelManifest, x: FloatArray, in_scaler: Scaler | None = None,
            out_scaler: Scaler | None = None) -> FloatArray:
    """Predictions in original units (offline: ``model.predict`` batches the whole array); a challenger passes its
    own scalers."""
    y = model.predict(manifest.model_inputs(x, in_scaler), verbose=0, batch_size=256)
    return manifest.output_values(y, out_scaler)


def _progress_callback(epochs: int, report: Callable[[dict[str, float]], None] | None) -> keras.callbacks.Callback:
    import keras

    class Progress(keras.callbacks.Callback):  # type: ignore[misc]
        """Logs epoch, loss and the estimated time left after every epoch."""

        def on_train_begin(self, logs: dict[str, float] | None = None) -> None:
            self.started = time.monotonic()

        def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            done = epoch + 1
            elapsed = time.monotonic() - self.started
            progress = {"epoch": float(done), "epochs": float(epochs), "loss": float((logs or {}).get("loss", "nan")),
                        "elapsed_s": elapsed, "eta_s": elapsed / done * (epochs - done)}
            log.info("training progress", extra=progress)
            if report is not None:
                report(progress)

    return Progress()


def train_challenger(
    base: keras.Model,
    manifest: ModelManifest,
    train: TrainingSet,
    *,
    mode: Mode,
    epochs: int,
    batch_size: int = 32,
    seed: int = 0,
    report: Callable[[dict[str, float]], None] | None = None,
) -> tuple[keras.Model, Scaler, Scaler]:
    """``warm_start`` fine-tunes ``base`` in place (pass a fresh copy); ``reset`` trains the same architecture
    from new weights. Returns the model and the refitted input and output scalers."""
    import keras

    if mode not in ("warm_start", "reset"):
        raise ValueError(f"unknown mode {mode!r}; use warm_start or reset")
    if epochs < 1:
        raise ValueError("epochs must be at least 1")
    keras.utils.set_random_seed(seed)
    model = base if mode == "warm_start" else keras.models.clone_model(base)
    in_scaler, out_scaler = refit_scalers(manifest, train)
    task = manifest.kind
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=task.keras_loss(manifest, int(model.output_shape[-1])))
    weights, balance = train.weights, task.class_weights(train.y)
    if balance is not None:  # a rare class counts as much as a common one
        weights = balance if weights is None else weights * balance
    model.fit(manifest.model_inputs(train.x, in_scaler), task.targets(manifest, train.y, out_scaler),
              sample_weight=weights, epochs=epochs, batch_size=batch_size, verbose=0, shuffle=True,
              callbacks=[_progress_callback(epochs, report)])
    return model, in_scaler, out_scaler
