"""A classifier's retraining run: the task's loss and class weights, a stratified holdout, a gate on log loss (or a
chosen classification metric), and a registered challenger that is still a classifier with its classes."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pytest

from mitiga_core.bundle import ModelManifest, Scaler, TrainingData, read_manifest, read_validation, save_bundle
from mitiga_core.store import FilesystemModelStore
from mitiga_retrainer.flow import RetrainOptions, retrain
from tests.retrainer.conftest import days

pytestmark = pytest.mark.slow
CLASSES = ["low", "mid", "high"]


def labels(x: np.ndarray, turn: float) -> np.ndarray:
    """Three classes cut from a score; ``turn`` rotates the score (a concept change). The top class is rare."""
    score = np.cos(turn) * x[:, 0] + np.sin(turn) * x[:, 1]
    return np.digitize(score, [-0.3, 1.0]).astype(np.float32).reshape(-1, 1)


@pytest.fixture
def store(tmp_path: Path) -> FilesystemModelStore:
    import keras

    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(400, 3)).astype(np.float32)
    y = labels(x, 0.0)
    inputs = keras.Input(shape=(3,))
    hidden = keras.layers.Dense(16, activation="relu")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(hidden))
    scaler = Scaler.fit("standard", x)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(scaler.transform(x), y, epochs=20, verbose=0)
    manifest = ModelManifest(name="q", task="multiclass", features=["a", "b", "c"], classes=CLASSES,
                             input_scaler=scaler)
    store = FilesystemModelStore(tmp_path)
    saved = save_bundle(store, manifest, model, x, TrainingData(x=x, y=y, dates=days(date(2020, 1, 1), 400)))
    store.set_champion("q", saved.version)
    keras.utils.set_random_seed(0)
    return store


def production(turn: float, n: int = 400, seed: int = 1) -> TrainingData:
    x = np.random.default_rng(seed).normal(size=(n, 3)).astype(np.float32)
    return TrainingData(x=x, y=labels(x, turn), dates=days(date(2021, 1, 1), n))


def test_a_concept_change_retrains_a_classifier_on_log_loss_and_keeps_its_classes(
        store: FilesystemModelStore) -> None:
    options = RetrainOptions(strategy="sliding_window", window_rows=300, mode="warm_start", epochs=15,
                             holdout_rows=60)
    result = retrain(store, "q", "1", production(turn=np.pi / 2), options)
    assert result.decision is not None and result.decision.metric == "log_loss"
    assert result.decision.promote and result.version == "2", result.decision.reason
    manifest = read_manifest(store.path("q", "2"))
    assert manifest.task == "multiclass" and manifest.classes == CLASSES and manifest.output_scaler.kind == "none"
    assert {"holdout_accuracy", "holdout_log_loss", "holdout_f1"} <= set(manifest.training.metrics)
    validation = read_validation(store.path("q", "2"))
    assert validation is not None and validation.pred.shape == (60, 3)
    assert np.allclose(validation.pred.sum(axis=1), 1, atol=1e-4)  # probabilities, not scaled values
    held = validation.y.reshape(-1)
    recent = production(turn=np.pi / 2).y.reshape(-1)[-180:]
    for c in range(3):  # stratified: each class in its share of the recent period
        assert abs((held == c).mean() - (recent == c).mean()) <= 2 / 60


def test_the_gate_takes_a_chosen_classification_metric_and_refuses_a_regression_one(
        store: FilesystemModelStore) -> None:
    result = retrain(store, "q", "1", production(turn=np.pi / 2), RetrainOptions(
        window_rows=300, epochs=3, holdout_rows=60, metric="accuracy"))
    assert result.decision is not None and result.decision.metric == "accuracy"
    assert 0 <= result.decision.champion <= 1
    with pytest.raises(ValueError, match="gate metric 'mae' does not apply to a multiclass model"):
        retrain(store, "q", "1", production(turn=0.0), RetrainOptions(window_rows=300, epochs=1, metric="mae"))
