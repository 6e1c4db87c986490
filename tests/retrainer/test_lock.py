"""The model's retrain lock: every run holds it (a CronJob's and a manual one take it themselves) and only its
owner releases it."""

from __future__ import annotations

from pathlib import Path

import pytest

from mitiga_core.bus import InMemoryBus
from mitiga_core.progress import lock_key
from mitiga_core.state import InMemoryStateStore
from mitiga_retrainer.job import JobFailed, Locked, run_job, take_lock
from mitiga_retrainer.settings import RetrainerSettings
from tests.retrainer.conftest import regressor_store

pytestmark = pytest.mark.slow  # trains challengers


def test_a_run_takes_the_lock_unless_another_holds_it_and_releases_only_its_own(tmp_path: Path) -> None:
    state = InMemoryStateStore()
    launched = RetrainerSettings(model="m", request_id="retrain-m-abc", trigger="informed")
    state.set(lock_key("m"), b"retrain-m-abc")  # the detector took it for this run
    assert take_lock(launched, state) == "retrain-m-abc"
    cron = RetrainerSettings(model="m", trigger="blind")
    with pytest.raises(Locked, match="retrain-m-abc"):
        take_lock(cron, state)
    state.delete(lock_key("m"))
    owner = take_lock(cron, state)
    assert owner.startswith("blind-") and state.get(lock_key("m")) == owner.encode()


def test_a_run_that_fails_releases_its_own_lock_and_never_another_runs(tmp_path: Path) -> None:
    store, state, bus = regressor_store(tmp_path, "m"), InMemoryStateStore(), InMemoryBus()
    bad = RetrainerSettings(model="m", request_id="retrain-m-1", trigger="manual", epochs=1, holdout_rows=5000)
    with pytest.raises(JobFailed, match="holdout"):
        run_job(bad, store=store, state=state, bus=bus)
    assert state.get(lock_key("m")) is None  # it took the lock and gave it back
    state.set(lock_key("m"), b"someone-else")
    with pytest.raises(Locked):
        run_job(bad, store=store, state=state, bus=bus)
    assert state.get(lock_key("m")) == b"someone-else"  # a run that does not own the lock leaves it alone
