"""The contract of StateStore.apply, checked against each implementation."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest

from mitiga_core.state import StagedWrites, Write

if TYPE_CHECKING:
    from mitiga_core.state import StateStore


def check_apply(store: StateStore) -> None:
    store.set("gone", b"x")
    store.append("list", b"0")
    store.apply([Write("set", "a", b"1"), Write("set", "brief", b"2", ttl_s=0.2), Write("delete", "gone"),
                 Write("append", "list", b"1", max_items=2), Write("append", "list", b"2", max_items=2),
                 Write("set", "a", b"3")])
    assert store.get("a") == b"3"  # in order: the later write wins
    assert store.get("brief") == b"2" and store.get("gone") is None
    assert store.items("list") == [b"1", b"2"]
    time.sleep(0.3)
    assert store.get("brief") is None
    with pytest.raises(ValueError, match="ttl_s"):  # refused before anything is written
        store.apply([Write("set", "b", b"1"), Write("set", "c", b"1", ttl_s=0)])
    assert store.get("b") is None
    store.apply([])


def check_staged(store: StateStore) -> None:
    store.set("k", b"old")
    staged = StagedWrites()
    staged.set("k", b"new", ttl_s=60)
    staged.delete("d")
    staged.add(Write("append", "l", b"x", max_items=5))
    assert staged.get("k", store) == b"new" and store.get("k") == b"old"  # reads see the stage, the store not yet
    store.set("d", b"present")
    assert staged.get("d", store) is None
    assert len(staged) == 3
    staged.apply(store, Write("set", "checkpoint", b"c"))
    assert (store.get("k"), store.get("d"), store.items("l"), store.get("checkpoint")) == (b"new", None, [b"x"], b"c")
    assert len(staged) == 0
    with pytest.raises(ValueError, match="set\\(\\) and delete\\(\\)"):
        staged.add(Write("set", "k", b"v"))


def check_delete_if(store: StateStore) -> None:
    """A lock is released by its owner only, in one step."""
    store.set("lock", b"owner-a", ttl_s=60)
    assert not store.delete_if("lock", b"owner-b") and store.get("lock") == b"owner-a"
    assert store.delete_if("lock", b"owner-a") and store.get("lock") is None
    assert not store.delete_if("lock", b"owner-a")  # gone: nothing to release


def check_set_bounded(store: StateStore) -> None:
    """An index keeps at most its bounds of keys, evicting the oldest; a present key is refused, not renoted."""
    done = store.set_bounded("ix", {f"k{i}": b"v" * 10 for i in range(5)}, ttl_s=60, max_items=3, max_bytes=10_000)
    assert done.refused == [] and done.evicted == ["k0", "k1"]
    assert [store.get(f"k{i}") for i in range(5)] == [None, None, b"v" * 10, b"v" * 10, b"v" * 10]
    again = store.set_bounded("ix", {"k4": b"other", "k5": b"v"}, ttl_s=60, max_items=3, max_bytes=10_000)
    assert again.refused == ["k4"] and again.evicted == ["k2"] and store.get("k4") == b"v" * 10
    store.delete("k3")  # taken meanwhile: pushing it out of the index loses nothing, and is not reported
    by_bytes = store.set_bounded("ix", {"k6": b"x" * 20}, ttl_s=60, max_items=3, max_bytes=30)
    assert by_bytes.evicted == ["k4"]  # k3 (gone) and k4 (12 bytes each) leave: k5 (3) and k6 (22) fit in 30
    assert store.get("k5") == b"v" and store.get("k6") == b"x" * 20
    assert store.set_bounded("ix", {}, ttl_s=60, max_items=3, max_bytes=30).evicted == []


def check_bounded_set_in_a_batch(store: StateStore) -> None:
    """A staged set with an index (the detector's dedupe marks) is bounded like set_bounded, inside apply."""
    staged = StagedWrites()
    for i in range(5):
        staged.set(f"mark-{i}", b"1", ttl_s=60, index="marks", max_items=3)
    staged.apply(store, Write("set", "checkpoint", b"c"))
    assert [store.get(f"mark-{i}") for i in range(5)] == [None, None, b"1", b"1", b"1"]
    assert store.get("checkpoint") == b"c"
    store.apply([Write("set", "mark-2", b"again", ttl_s=60, index="marks", max_items=3)])
    assert store.get("mark-2") == b"1"  # present: not overwritten
