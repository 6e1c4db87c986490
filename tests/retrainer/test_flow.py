"""A retraining run end to end on a small real Keras model: gate, registration, lineage, rollout, failures."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pytest

from mitiga_core.bundle import TrainingData, read_manifest, read_validation
from mitiga_core.store import FilesystemModelStore
from mitiga_retrainer.flow import RetrainOptions, retrain
from tests.retrainer.conftest import days, regressor_store, relation

pytestmark = pytest.mark.slow


@pytest.fixture
def store(tmp_path: Path) -> FilesystemModelStore:
    return regressor_store(tmp_path)


def production(slope: float, n: int = 300, seed: int = 1) -> TrainingData:
    x = np.random.default_rng(seed).normal(size=(n, 3)).astype(np.float32)
    return TrainingData(x=x, y=relation(x, slope), dates=days(date(2021, 1, 1), n))


def test_concept_change_is_retrained_promoted_and_rolled_out(store: FilesystemModelStore) -> None:
    rollouts, progress = [], []
    options = RetrainOptions(strategy="sliding_window", window_rows=200, mode="warm_start", epochs=20,
                             holdout_rows=60, trigger="informed", episode_id="ep1", request_id="req1")
    result = retrain(store, "m", "1", production(slope=-1.0), options, publish=rollouts.append,
                     report=progress.append)
    assert result.decision.promote and result.version == "2"
    assert result.decision.challenger < result.decision.champion
    assert store.champion("m") == "2" and store.champion_history("m") == ["1", "2"]
    manifest = read_manifest(store.path("m", "2"))
    assert manifest.lineage.parent == "1" and manifest.lineage.trigger == "informed"
    assert manifest.lineage.episode_id == "ep1" and manifest.lineage.strategy == "sliding_window"
    # the holdout is four blocks of 15 across the newest 180 rows: the rows between them are trained on, up to the
    # one before the newest block
    assert manifest.training.data_end == days(date(2021, 1, 1), 300)[-16]
    assert result.decision.holdout_requests == 60 and result.decision.holdout_top_request_share == pytest.approx(1 / 60)
    assert manifest.training.rows == 200 and "holdout_mae" in manifest.training.metrics
    validation = read_validation(store.path("m", "2"))  # the gate's holdout, with the challenger's predictions
    assert validation is not None and len(validation.x) == 60
    mae = float(np.abs(validation.y - validation.pred).mean())
    assert mae == pytest.approx(manifest.training.reference_error("mae"), rel=1e-4)
    assert [r.version for r in rollouts] == ["2"] and rollouts[0].previous_version == "1"
    assert [p["epoch"] for p in progress] == [float(e) for e in range(1, 21)] and progress[-1]["eta_s"] == 0
    decision = store.decisions("m")[-1]
    assert decision["promote"] is True and decision["version"] == "2" and decision["request_id"] == "req1"


def test_a_challenger_that_is_not_better_by_the_margin_is_refused(store: FilesystemModelStore) -> None:
    rollouts = []
    options = RetrainOptions(strategy="full_history", mode="reset", epochs=2, holdout_rows=60, margin=0.5)
    result = retrain(store, "m", "1", production(slope=1.0), options, publish=rollouts.append)
    assert not result.decision.promote and result.version is None
    assert store.list_versions("m") == ["1"] and store.champion("m") == "1" and rollouts == []
    decision = store.decisions("m")[-1]
    assert decision["promote"] is False and decision["version"] is None
    assert decision["champion"] == pytest.approx(result.decision.champion)


@pytest.mark.parametrize(("options", "needle"), [
    (RetrainOptions(strategy="sliding_window", window_rows=None), "exactly one"),
    (RetrainOptions(holdout_rows=5000), "holdout"),
    (RetrainOptions(window_rows=20, min_rows=50), "at least 50"),
    (RetrainOptions(mode="bogus", epochs=1), "unknown mode"),  # type: ignore[arg-type]
    (RetrainOptions(margin=1.5, epochs=1), "margin"),
])
def test_bad_options_fail_before_anything_is_registered(store: FilesystemModelStore, options: RetrainOptions,
                                                        needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        retrain(store, "m", "1", production(slope=-1.0), options)
    assert store.list_versions("m") == ["1"] and store.champion("m") == "1"


def test_the_champion_changes_only_once_the_new_version_is_live(store: FilesystemModelStore) -> None:
    seen, rollouts = [], []

    def go_live(version: str) -> None:
        seen.append((version, store.champion("m"), list(rollouts)))

    options = RetrainOptions(strategy="sliding_window", window_rows=200, epochs=20, holdout_rows=60)
    result = retrain(store, "m", "1", production(slope=-1.0), options, publish=rollouts.append, go_live=go_live)
    assert seen == [("2", "1", [])]  # while it went live, the store still named the old champion, nothing announced
    assert result.version == "2" and store.champion("m") == "2" and [r.version for r in rollouts] == ["2"]

    def failing(version: str) -> None:
        raise RuntimeError("rollout failed")

    with pytest.raises(RuntimeError):
        retrain(store, "m", "2", production(slope=-1.0, seed=3), options, publish=rollouts.append, go_live=failing)
    assert store.champion("m") == "2" and len(rollouts) == 1
