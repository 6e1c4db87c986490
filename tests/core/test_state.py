from __future__ import annotations

import pytest

from mitiga_core.state import InMemoryStateStore


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_ttl_expiry_and_lock_semantics() -> None:
    clock = Clock()
    state = InMemoryStateStore(clock=clock)
    state.set("k", b"v", ttl_s=10)
    assert state.get("k") == b"v"
    assert state.set_if_absent("lock", b"a", ttl_s=5) is True
    assert state.set_if_absent("lock", b"b", ttl_s=5) is False
    assert state.get("lock") == b"a"
    clock.now = 6
    assert state.set_if_absent("lock", b"c", ttl_s=5) is True  # the first lock expired
    clock.now = 11
    assert state.get("k") is None
    assert state.delete("lock") is True and state.delete("lock") is False


def test_ttl_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        InMemoryStateStore().set("k", b"v", ttl_s=0)
