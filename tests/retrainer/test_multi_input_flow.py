"""A model with two named inputs retrains with its inputs as a dict: the challenger is trained, gated and registered
with the same inputs, and its drift reference is every input's features."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pytest

from mitiga_core.bundle import (
    ModelInput,
    ModelManifest,
    Scaler,
    TrainingData,
    load_keras,
    read_manifest,
    read_reference,
    save_bundle,
)
from mitiga_core.store import FilesystemModelStore
from mitiga_retrainer.flow import RetrainOptions, retrain
from tests.retrainer.conftest import days

pytestmark = pytest.mark.slow
INPUTS = [ModelInput(name="prices", shape=[5, 1]), ModelInput(name="calendar", shape=[2])]
FEATURES = [f"prices.{i}" for i in range(5)] + ["calendar.dow", "calendar.month"]


def target(x: np.ndarray, weight: float) -> np.ndarray:
    return (x[:, :5].mean(axis=1) + weight * x[:, 5]).astype(np.float32).reshape(-1, 1)


def test_a_two_input_model_retrains_with_its_inputs_as_a_dict(tmp_path: Path) -> None:
    import keras

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 7)).astype(np.float32)
    y = target(x, 1.0)
    prices, calendar = keras.Input(shape=(5, 1), name="prices"), keras.Input(shape=(2,), name="calendar")
    joined = keras.layers.Concatenate()([keras.layers.Flatten()(prices), calendar])
    model = keras.Model([prices, calendar], keras.layers.Dense(1)(keras.layers.Dense(16, activation="relu")(joined)))
    manifest = ModelManifest(name="two", task="regression", features=FEATURES, inputs=INPUTS,
                             input_scaler=Scaler.fit("standard", x), output_scaler=Scaler.fit("standard", y))
    model.compile(optimizer="adam", loss="mse")
    model.fit(manifest.model_inputs(x), manifest.output_scaler.transform(y), epochs=20, verbose=0)
    store = FilesystemModelStore(tmp_path)
    saved = save_bundle(store, manifest, model, x, TrainingData(x=x, y=y, dates=days(date(2020, 1, 1), 400)))
    store.set_champion("two", saved.version)
    production_x = np.random.default_rng(1).normal(size=(300, 7)).astype(np.float32)
    production = TrainingData(x=production_x, y=target(production_x, -2.0), dates=days(date(2021, 1, 1), 300))
    result = retrain(store, "two", "1", production, RetrainOptions(window_rows=200, epochs=20, holdout_rows=60))
    assert result.decision is not None and result.decision.promote, result.decision
    new = read_manifest(store.path("two", "2"))
    assert new.inputs == INPUTS and new.features == FEATURES
    reference = read_reference(store.path("two", "2"))
    assert reference is not None and reference.shape[1] == 7
    challenger = load_keras(store.path("two", "2") / "model.keras")
    assert [t.name for t in challenger.inputs] == ["prices", "calendar"]
