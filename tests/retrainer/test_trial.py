"""A challenger that passed the gate goes on live trial (shadow or canary) instead of becoming the champion; a
promotion request later makes it the champion only while it is still the one on trial against the same champion."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mitiga_core.bus import InMemoryBus
from mitiga_core.events import Topic, decode_as
from mitiga_core.pb.mitiga.v1 import events_pb2 as pb
from mitiga_core.progress import read_progress
from mitiga_core.promotion import Candidate, start_trial
from mitiga_core.state import InMemoryStateStore
from mitiga_core.store import FilesystemModelStore
from mitiga_retrainer.flow import RetrainOptions, retrain
from mitiga_retrainer.job import JobFailed, run_job
from mitiga_retrainer.settings import RetrainerSettings
from tests.retrainer.conftest import regressor_store
from tests.retrainer.test_flow import production

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("store")
    regressor_store(root)
    return root


@pytest.fixture
def store(trained: Path, tmp_path: Path) -> FilesystemModelStore:
    shutil.copytree(trained, tmp_path / "store")
    return FilesystemModelStore(tmp_path / "store")


def _copy_version(store: FilesystemModelStore) -> str:
    return store.write_version("m", lambda folder, _: shutil.copytree(store.path("m", "1"), folder,
                                                                      dirs_exist_ok=True))


def _rollouts(bus: InMemoryBus) -> list[pb.ModelRollout]:
    return [decode_as(env, pb.ModelRollout) for env in bus.messages(Topic.ROLLOUT)]


@pytest.mark.parametrize("mode", ["shadow", "canary"])
def test_a_challenger_that_passed_the_gate_goes_on_trial_not_live(store: FilesystemModelStore, mode: str) -> None:
    rollouts, went_live = [], []
    options = RetrainOptions(strategy="sliding_window", window_rows=200, epochs=20, holdout_rows=60,
                             promotion_mode=mode, canary_percent=25.0, request_id="req-t")  # type: ignore[arg-type]
    result = retrain(store, "m", "1", production(slope=-1.0), options, publish=rollouts.append,
                     go_live=went_live.append)
    assert result.decision is not None and result.decision.promote
    assert result.version == "2" and result.stage == mode
    assert store.champion("m") == "1" and went_live == []  # not live: Helm is not run, the champion stays
    candidate = Candidate.of(store.candidate("m"))
    assert candidate is not None and (candidate.version, candidate.mode, candidate.champion) == ("2", mode, "1")
    assert candidate.canary_percent == (25.0 if mode == "canary" else 0.0) and candidate.since
    assert [(r.version, r.stage, r.previous_version) for r in rollouts] == [("2", mode, "1")]
    decision = store.decisions("m")[-1]
    assert decision["promote"] is True and decision["stage"] == mode and decision["version"] == "2"


def test_a_promotion_request_makes_the_candidate_on_trial_the_champion(store: FilesystemModelStore) -> None:
    version = _copy_version(store)
    start_trial(store, "m", Candidate(version=version, mode="shadow", champion="1"))
    bus, state = InMemoryBus(), InMemoryStateStore()
    settings = RetrainerSettings(model="m", trigger="promotion", promote_version=version, request_id="promote-m-v2")
    result = run_job(settings, store=store, state=state, bus=bus)
    assert result.version == version and result.decision is None
    assert store.champion("m") == version and store.candidate("m") is None
    assert [(r.version, r.stage, r.previous_version) for r in _rollouts(bus)] == [(version, "", "1")]
    assert (read_progress(state, "promote-m-v2") or {})["status"] == "promoted"


def test_a_promotion_of_a_version_not_on_trial_changes_nothing(store: FilesystemModelStore) -> None:
    version = _copy_version(store)
    bus, state = InMemoryBus(), InMemoryStateStore()
    settings = RetrainerSettings(model="m", trigger="promotion", promote_version=version)
    with pytest.raises(JobFailed, match="not on trial"):
        run_job(settings, store=store, state=state, bus=bus)
    assert store.champion("m") == "1" and _rollouts(bus) == []


def test_a_trial_whose_champion_changed_meanwhile_is_void(store: FilesystemModelStore) -> None:
    candidate, other = _copy_version(store), _copy_version(store)
    start_trial(store, "m", Candidate(version=candidate, mode="canary", champion="1", canary_percent=10))
    store.set_champion("m", other)  # e.g. an operator's rollback or upload
    bus = InMemoryBus()
    settings = RetrainerSettings(model="m", trigger="promotion", promote_version=candidate)
    with pytest.raises(JobFailed, match="changed"):
        run_job(settings, store=store, state=InMemoryStateStore(), bus=bus)
    assert store.champion("m") == other and store.candidate("m") is None
    assert [(r.version, r.stage) for r in _rollouts(bus)] == [(candidate, "withdrawn")]


def test_with_approval_required_a_winning_challenger_waits_and_an_approved_one_is_promoted(
        store: FilesystemModelStore) -> None:
    """``promotion_approval: required``: the run ends as a candidate that serves nothing; the promotion Job the
    detector launches once an admin approves makes it the champion."""
    rollouts, went_live = [], []
    options = RetrainOptions(strategy="sliding_window", window_rows=200, epochs=20, holdout_rows=60, approval=True,
                             request_id="retrain-m-a")
    result = retrain(store, "m", "1", production(slope=-1.0), options, publish=rollouts.append,
                     go_live=went_live.append)
    assert result.version == "2" and result.stage == "approval"
    assert store.champion("m") == "1" and went_live == []
    waiting = Candidate.of(store.candidate("m"))
    assert waiting is not None and (waiting.version, waiting.mode, waiting.live) == ("2", "approval", False)
    assert store.decisions("m")[-1]["awaiting_approval"] is True
    assert [(r.version, r.stage) for r in rollouts] == [("2", "approval")]
    bus, state = InMemoryBus(), InMemoryStateStore()
    promotion = RetrainerSettings(model="m", trigger="promotion", promote_version="2", request_id="promote-m-v2")
    run_job(promotion, store=store, state=state, bus=bus)
    assert store.champion("m") == "2" and store.candidate("m") is None
