"""The promotion policy on a live trial: both versions' predictions of the same requests, joined to their ground
truth, decided once at the labelled count by a paired test; promoted through a promotion Job, discarded by ending
the trial; both in the decision log and the metrics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mitiga_core import retrain_request
from mitiga_core.events import Topic, decode_as
from mitiga_core.labelled import LabelledLog
from mitiga_core.pb.mitiga.v1 import events_pb2 as pb
from mitiga_core.promotion import Candidate, start_trial
from mitiga_detector.promotion import paired_test
from tests.detector.conftest import Harness, feedback, inference, write_bundle

N = 60


def _trial(tmp_path: Path, mode: str = "shadow", since: str = "", **overrides: object) -> Harness:
    h = Harness(tmp_path, promotion_min_labelled=N, **overrides)
    write_bundle(h.store, seed=0)
    write_bundle(h.store, seed=1)
    h.store.set_champion("tab", "1")
    start_trial(h.store, "tab", Candidate(version="2", mode=mode, champion="1", since=since))  # type: ignore[arg-type]
    return h


def _requests(h: Harness, rng: np.random.Generator, n: int, champion_noise: float, candidate_noise: float) -> None:
    """``n`` requests both versions predicted (the candidate off the path), each followed by its ground truth."""
    for _ in range(n):
        x = rng.normal(size=(4, 3)).astype(np.float32)
        truth = x.sum(axis=1)
        rid = f"r{rng.integers(1 << 62)}"
        champion = truth + rng.normal(scale=champion_noise, size=4)
        h.core.handle(inference(x, champion[:, None], version="1", request_id=rid))
        answer = truth + rng.normal(scale=candidate_noise, size=4)
        h.core.handle(inference(x, answer[:, None], version="2", request_id=rid, shadow=True))
        h.core.handle(feedback([(rid, truth.tolist())]))


def _trials(h: Harness) -> list[dict[str, object]]:
    return [d for d in h.store.decisions("tab") if d.get("trial")]


def test_a_better_candidate_is_promoted_at_the_labelled_count(tmp_path: Path) -> None:
    h = _trial(tmp_path)
    rng = np.random.default_rng(3)
    _requests(h, rng, N - 1, champion_noise=0.5, candidate_noise=0.2)
    assert _trials(h) == [] and h.launcher.specs == {}  # not before the count
    assert h.value("mitiga_promotion_labelled", model="tab", version="2") == N - 1
    _requests(h, rng, 1, champion_noise=0.5, candidate_noise=0.2)
    [decision] = _trials(h)
    assert decision["promote"] is True and decision["labelled"] == N and decision["stage"] == "shadow"
    assert float(decision["challenger"]) < float(decision["champion"]) and float(decision["p_value"]) < 0.05  # type: ignore[arg-type]
    assert h.value("mitiga_promotion_decisions_total", model="tab", mode="shadow", outcome="promoted") == 1
    # the promotion Job: no training, the candidate's version, from the champion it was compared with
    [spec] = h.launcher.specs.values()
    request = retrain_request.parse(spec.env[retrain_request.ENV])
    assert (request.trigger, request.base_version, dict(request.options)) == ("promotion", "1",
                                                                               {"promote_version": "2"})
    assert h.store.candidate("tab") is not None  # the retrainer ends the trial once it is live
    # the candidate's predictions were neither monitored as the model's nor kept as labelled rows
    assert h.value("mitiga_drift_share_features", model="tab", version="2") is None
    h.core.checkpoint()
    labelled = LabelledLog(h.state).read("tab")
    assert labelled is not None and len(labelled.x) == N * 4


@pytest.mark.parametrize(("champion_noise", "candidate_noise"), [(0.2, 0.5), (0.3, 0.3)])
def test_a_worse_or_equal_candidate_is_discarded_and_never_promoted(tmp_path: Path, champion_noise: float,
                                                                    candidate_noise: float) -> None:
    h = _trial(tmp_path, mode="canary")
    rng = np.random.default_rng(4)
    _requests(h, rng, N, champion_noise, candidate_noise)
    [decision] = _trials(h)
    assert decision["promote"] is False and float(decision["p_value"]) >= 0.05  # type: ignore[arg-type]
    assert h.store.candidate("tab") is None and h.launcher.specs == {}
    h.publisher.stop()
    withdrawn = [decode_as(env, pb.ModelRollout) for env in h.bus.messages(Topic.ROLLOUT)]
    assert [(r.version, r.stage) for r in withdrawn] == [("2", "withdrawn")]
    assert h.value("mitiga_promotion_decisions_total", model="tab", mode="canary", outcome="discarded") == 1
    h.publisher.start()
    _requests(h, rng, N, champion_noise, candidate_noise)  # the trial is over: nothing more is decided
    assert len(_trials(h)) == 1 and h.store.champion("tab") == "1"


def test_a_trial_without_enough_ground_truth_in_time_expires_and_retraining_resumes(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from mitiga_core.promotion import outcome

    h = _trial(tmp_path, since=(datetime.now(UTC) - timedelta(hours=10)).isoformat(), promotion_max_hours=12)
    rng = np.random.default_rng(6)
    _requests(h, rng, 20, 0.2, 0.2)  # windows go by, critical: the trial is 10 h old, under its 12 h
    assert _trials(h) == [] and h.store.candidate("tab") is not None
    assert (h.value("mitiga_retrain_triggers_total", model="tab", outcome="trial") or 0) > 0  # retraining held
    assert h.launcher.specs == {}
    h = _trial(tmp_path / "old", since=(datetime.now(UTC) - timedelta(hours=13)).isoformat(), promotion_max_hours=12)
    _requests(h, rng, 20, 0.2, 0.2)
    [expired] = _trials(h)
    assert expired["outcome"] == "expired" and expired["promote"] is False and expired["labelled"] < N
    assert "MITIGA_PROMOTION_MAX_HOURS" in str(expired["reason"]) and outcome(expired) == "expired after shadow trial"
    assert h.store.candidate("tab") is None
    assert h.value("mitiga_promotion_decisions_total", model="tab", mode="shadow", outcome="expired") == 1
    assert [s.labels["mitiga.io/trigger"] for s in h.launcher.specs.values()] == ["informed"]  # retraining resumed


def test_ground_truth_that_comes_before_the_candidates_prediction_waits_for_it(tmp_path: Path) -> None:
    h = _trial(tmp_path)
    rng = np.random.default_rng(5)
    late = []
    for i in range(7):  # the champion's prediction and the ground truth first; the off-path prediction comes last
        x = rng.normal(size=(4, 3)).astype(np.float32)
        truth = x.sum(axis=1)
        h.core.handle(inference(x, truth[:, None] + 0.3, version="1", request_id=f"late{i}"))
        h.core.handle(feedback([(f"late{i}", truth.tolist())]))
        late.append(inference(x, truth[:, None] + 0.1, version="2", request_id=f"late{i}", shadow=True))
    assert h.value("mitiga_promotion_unpaired_total", model="tab") == 7
    assert h.value("mitiga_promotion_labelled", model="tab", version="2") is None
    h.core.checkpoint()  # the waiting ground truth survives the consumer's checkpoint
    for envelope in late:
        h.core.handle(envelope)
    assert h.value("mitiga_promotion_labelled", model="tab", version="2") == 7
    assert h.value("mitiga_promotion_error", model="tab", version="2", role="candidate") == pytest.approx(0.1, 1e-4)
    assert h.value("mitiga_promotion_error", model="tab", version="2", role="champion") == pytest.approx(0.3, 1e-4)


def test_the_paired_test_sees_a_consistent_small_gain_that_unpaired_spread_hides() -> None:
    rng = np.random.default_rng(0)
    difficulty = rng.exponential(1.0, size=200)  # requests differ far more than the versions do
    champion = difficulty + 0.05
    candidate = difficulty + rng.normal(0, 0.02, size=200)
    assert paired_test(champion, candidate) < 1e-6
    assert paired_test(candidate, champion) > 0.99
    assert paired_test(champion, champion) == 1.0
