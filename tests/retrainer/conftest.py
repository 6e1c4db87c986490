"""A small real Keras regressor with its training data, as a retrainer's starting point."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from datetime import date, timedelta
from pathlib import Path

import numpy as np

from mitiga_core.bundle import ModelManifest, Scaler, TrainingData, save_bundle
from mitiga_core.store import FilesystemModelStore


def days(start: date, n: int) -> np.ndarray:
    return np.asarray([(start + timedelta(days=i)).isoformat() for i in range(n)])


def relation(x: np.ndarray, slope: float) -> np.ndarray:
    return (slope * x.sum(axis=1, keepdims=True)).astype(np.float32)


_TRAINED: dict[str, Path] = {}
"""Each name's store, trained once per test session and copied for every test that asks for it."""


def regressor_store(root: Path, name: str = "m") -> FilesystemModelStore:
    """Version 1 of ``name``: a dense regressor trained on y = sum(x), with its training data (trained once per
    session: each test gets a copy of its own)."""
    if name not in _TRAINED:
        trained = Path(tempfile.mkdtemp(prefix=f"mitiga-regressor-{name}-"))
        atexit.register(shutil.rmtree, trained, True)
        _train(trained, name)
        _TRAINED[name] = trained
    shutil.copytree(_TRAINED[name], root, dirs_exist_ok=True)
    import keras

    keras.utils.set_random_seed(0)  # what the test trains next starts from the same state, whoever trained first
    return FilesystemModelStore(root)


def _train(root: Path, name: str) -> None:
    import keras

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 3)).astype(np.float32)
    y = relation(x, 1.0)
    inputs = keras.Input(shape=(3,))
    model = keras.Model(inputs, keras.layers.Dense(1)(keras.layers.Dense(16, activation="relu")(inputs)))
    in_s, out_s = Scaler.fit("standard", x), Scaler.fit("standard", y)
    model.compile(optimizer="adam", loss="mse")
    model.fit(in_s.transform(x), out_s.transform(y), epochs=30, verbose=0)
    manifest = ModelManifest(name=name, task="regression", features=["a", "b", "c"], input_scaler=in_s,
                             output_scaler=out_s)
    store = FilesystemModelStore(root)
    saved = save_bundle(store, manifest, model, x, TrainingData(x=x, y=y, dates=days(date(2020, 1, 1), 400)))
    store.set_champion(name, saved.version)
