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


def test_bounded_lists() -> None:
    state = InMemoryStateStore()
    assert state.items("l") == []
    for i in range(5):
        state.append("l", str(i).encode(), max_items=3)
    assert state.items("l") == [b"2", b"3", b"4"]
    assert state.delete("l") is True and state.items("l") == []


def test_labelled_log_roundtrip_and_date_filter() -> None:
    import numpy as np

    from mitiga_core.labelled import LabelledLog

    log = LabelledLog(InMemoryStateStore(), max_requests=10)
    assert log.read("m") is None
    log.append("m", np.ones((2, 3)), np.array([[1.0], [2.0]]), "2004-01-05")
    log.append("m", np.zeros((1, 3)), np.array([[3.0]]), "2004-03-01")
    data = log.read("m")
    assert data is not None and data.x.shape == (3, 3) and data.y[:, 0].tolist() == [1.0, 2.0, 3.0]
    assert list(data.dates) == ["2004-01-05", "2004-01-05", "2004-03-01"]
    only_march = log.read("m", start="2004-02-01")
    assert only_march is not None and len(only_march.x) == 1
    assert log.read("m", end="2003-12-31") is None


def test_write_batches() -> None:
    from tests.core.state_contract import (
        check_apply,
        check_bounded_set_in_a_batch,
        check_delete_if,
        check_set_bounded,
        check_staged,
    )

    check_apply(InMemoryStateStore())
    check_staged(InMemoryStateStore())
    check_delete_if(InMemoryStateStore())
    check_set_bounded(InMemoryStateStore())
    check_bounded_set_in_a_batch(InMemoryStateStore())


def test_keys_that_expire_unread_are_swept_and_set_many_if_absent_keeps_what_is_held() -> None:
    from mitiga_core.state.memory import SWEEP_EVERY

    clock = Clock()
    store = InMemoryStateStore(clock)
    for i in range(SWEEP_EVERY - 1):
        store.set_if_absent(f"request-id:{i}", b"1", ttl_s=10)
    clock.now = 11
    store.set("live", b"1")  # the write that triggers a sweep
    assert len(store._data) == 1  # only "live" is left: nothing that expired unread stays in memory
    store.set("held", b"first")
    assert store.set_many_if_absent({"held": b"second", "free": b"new"}) == ["held"]
    assert (store.get("held"), store.get("free")) == (b"first", b"new")
