"""Attack: release another run's retrain lock.

A retrain's lock expires (its TTL) while the run is still finishing; a second run takes it. When the first run then
releases "its" lock with a GET followed by a DELETE, the second run's lock can go in between, and a third run starts
beside the second. The release must compare and delete in one step, on the real Redis as in memory."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mitiga_core.progress import lock_key
from mitiga_core.state import InMemoryStateStore

if TYPE_CHECKING:
    from pathlib import Path


class TakenBetween(InMemoryStateStore):
    """A store where a second owner takes the lock right after the first owner reads it (the interleaving a GET then
    DELETE release loses to)."""

    def get(self, key: str) -> bytes | None:
        value = super().get(key)
        if key == lock_key("tab") and value == b"first":
            self.set(key, b"second", ttl_s=60)
        return value


def test_a_run_whose_lock_was_taken_over_cannot_release_the_new_owners_lock(tmp_path: Path) -> None:
    from mitiga_detector.trigger import RetrainTrigger
    from tests.detector.conftest import Harness

    h = Harness(tmp_path)
    state = TakenBetween()
    trigger = RetrainTrigger(h.settings, state, h.launcher, h.publisher)
    state.set(lock_key("tab"), b"first", ttl_s=60)
    state.get(lock_key("tab"))  # the lock expires and "second" takes it
    assert not trigger.release("tab", "first")
    assert state.get(lock_key("tab")) == b"second"
    assert trigger.release("tab", "second") and state.get(lock_key("tab")) is None


def test_the_retrainer_releases_only_the_lock_it_holds() -> None:
    from mitiga_retrainer.job import release_lock

    state = TakenBetween()
    state.set(lock_key("tab"), b"first", ttl_s=60)
    state.get(lock_key("tab"))
    release_lock(state, "tab", "first")
    assert state.get(lock_key("tab")) == b"second"
