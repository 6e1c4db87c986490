"""A person in the loop: a challenger that won waits for approval; an admin approves it (the promotion Job is
launched) or rejects it (the champion stays), each decision logged with who made it; unanswered, it expires. While
it waits, no automatic retrain replaces it, it is not on trial, and the detector says so (MitigaAwaitingApproval).
A live trial won under ``promotion_approval: required`` waits too instead of being promoted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import pytest

from mitiga_core import retrain_request
from mitiga_core.errors import Conflict
from mitiga_core.promotion import Candidate, start_trial
from tests.detector.conftest import Harness, feedback, inference, write_bundle
from tests.detector.test_promotion import N, _requests, _trial
from tests.detector.test_service import AUTH, admin_service  # noqa: F401 - the fixture


def _waiting(h: Harness, since: str = "") -> None:
    write_bundle(h.store, seed=0)
    write_bundle(h.store, seed=1)
    h.store.set_champion("tab", "1")
    h.store.record_decision("tab", {"version": "2", "promote": True, "metric": "mae", "champion": 0.3,
                                    "challenger": 0.1, "holdout_rows": 60, "awaiting_approval": True})
    start_trial(h.store, "tab", Candidate(version="2", mode="approval", champion="1", since=since))


def _degraded(h: Harness, n: int) -> None:
    rng = np.random.default_rng(5)
    for i in range(n):
        x = rng.normal(size=(50, 3)).astype(np.float32)
        pred = x.sum(axis=1, keepdims=True)
        h.core.handle(inference(x, pred, request_id=f"d{i}"))
        h.core.handle(feedback([(f"d{i}", (pred[:, 0] + rng.normal(size=50)).tolist())]))


def test_an_approved_challenger_is_promoted_and_the_decision_names_who(tmp_path: Path) -> None:
    h = Harness(tmp_path, cooldown_s=0)
    _waiting(h)
    _degraded(h, 4)  # critical: yet no retrain replaces the waiting challenger
    assert h.core.state_of("tab")["level"] == "critical" and h.launcher.specs == {}
    assert h.value("mitiga_retrain_triggers_total", model="tab", outcome="awaiting_approval") >= 1
    assert h.value("mitiga_promotion_awaiting_approval", model="tab", version="2") == 1
    assert "MitigaAwaitingApproval" in {a["labels"]["alertname"] for a in h.core.alerting.active()}
    evidence = h.core.approvals.evidence("tab")
    assert evidence["waiting"]["version"] == "2" and evidence["gate"]["challenger"] == 0.1
    with pytest.raises(Conflict):
        h.core.approvals.decide("tab", "3", True, "alice")
    assert h.core.approvals.decide("tab", "2", True, "alice", "the gate's margin is clear") == "approved"
    [spec] = h.launcher.specs.values()
    request = retrain_request.parse(spec.env[retrain_request.ENV])
    assert (request.trigger, dict(request.options)) == ("promotion", {"promote_version": "2"})
    last = h.store.decisions("tab")[-1]
    assert (last["approval"], last["by"], last["version"]) == ("approved", "alice", "2")
    h.publisher.stop()


def test_a_rejected_or_expired_challenger_leaves_the_champion(tmp_path: Path) -> None:
    h = Harness(tmp_path, approval_ttl_s=3600)
    _waiting(h, since=(datetime.now(UTC) - timedelta(minutes=10)).isoformat())
    assert h.core.approvals.decide("tab", "2", False, "bob", "trained on a bad week") == "rejected"
    assert h.store.candidate("tab") is None and h.store.champion("tab") == "1" and h.launcher.specs == {}
    assert (h.store.decisions("tab")[-1]["approval"], h.store.decisions("tab")[-1]["by"]) == ("rejected", "bob")

    start_trial(h.store, "tab", Candidate(version="2", mode="approval", champion="1",
                                          since=(datetime.now(UTC) - timedelta(minutes=30)).isoformat()))
    assert not h.core.approvals.expire("tab")  # half an hour of its hour
    assert h.core.approvals.expire("tab", now=datetime.now(UTC) + timedelta(hours=1))
    assert h.store.candidate("tab") is None and h.store.decisions("tab")[-1]["approval"] == "expired"
    assert h.value("mitiga_promotion_approvals_total", model="tab", outcome="expired") == 1
    h.publisher.stop()


def test_a_won_trial_waits_for_approval_when_required(tmp_path: Path) -> None:
    h = _trial(tmp_path, promotion_approval="required")
    _requests(h, np.random.default_rng(3), N, champion_noise=0.5, candidate_noise=0.2)
    assert h.launcher.specs == {}  # no promotion Job: a person decides
    waiting = Candidate.of(h.store.candidate("tab"))
    assert waiting is not None and (waiting.version, waiting.mode) == ("2", "approval")
    assert h.core.approvals.evidence("tab")["trial"]["outcome"] == "promoted"
    h.publisher.stop()


def test_approval_over_http_needs_the_admin_and_the_waiting_version(admin_service) -> None:  # noqa: F811
    url, store, _state, launcher = admin_service
    assert httpx.get(f"{url}/v1/models/tab/approval").json()["waiting"] is None
    write_bundle(store, seed=1)
    store.set_champion("tab", "1")
    start_trial(store, "tab", Candidate(version="2", mode="approval", champion="1"))
    assert httpx.get(f"{url}/v1/models/tab/approval").json()["waiting"]["version"] == "2"
    body = {"version": "2", "decision": "reject", "by": "carol"}
    assert httpx.post(f"{url}/v1/models/tab/approval", json=body).status_code == 401
    bad = httpx.post(f"{url}/v1/models/tab/approval", json={**body, "decision": "maybe"}, headers=AUTH)
    assert bad.status_code == 422 and "decision" in bad.json()["error"]
    other = httpx.post(f"{url}/v1/models/tab/approval", json={**body, "version": "7"}, headers=AUTH)
    assert other.status_code == 409 and "not awaiting approval" in other.json()["error"]
    done = httpx.post(f"{url}/v1/models/tab/approval", json=body, headers=AUTH)
    assert done.status_code == 200 and done.json()["outcome"] == "rejected" and launcher.specs == {}
    assert store.candidate("tab") is None and store.decisions("tab")[-1]["by"] == "carol"
