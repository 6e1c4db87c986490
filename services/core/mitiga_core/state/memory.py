"""An in-process state store with expiry, for the standalone mode and unit tests."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import TYPE_CHECKING

from mitiga_core.state.base import UNBOUNDED, Bounded, StateStore

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from mitiga_core.state.base import Write


SWEEP_EVERY = 1024
"""Expired keys are swept every this many writes."""


class InMemoryStateStore(StateStore):
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._data: dict[str, tuple[bytes, float | None]] = {}
        self._lists: dict[str, list[bytes]] = {}
        self._indexes: dict[str, tuple[OrderedDict[str, int], list[int]]] = {}
        """index -> (noted key -> its size, oldest first; [total size])."""
        self._lock = threading.Lock()
        self._clock = clock
        self._writes = 0

    def _live(self, key: str) -> bytes | None:
        item = self._data.get(key)
        if item is None:
            return None
        value, expires = item
        if expires is not None and self._clock() >= expires:
            del self._data[key]
            return None
        return value

    def _expiry(self, ttl_s: float | None) -> float | None:
        if ttl_s is not None and ttl_s <= 0:
            raise ValueError("ttl_s must be positive")
        return None if ttl_s is None else self._clock() + ttl_s

    def _sweep(self) -> None:
        """Drop expired keys every ``SWEEP_EVERY`` writes (call with the lock held): keys that expire unread, such
        as request ids, would otherwise stay for ever."""
        self._writes += 1
        if self._writes % SWEEP_EVERY:
            return
        now = self._clock()
        for key in [k for k, (_, expires) in self._data.items() if expires is not None and expires <= now]:
            del self._data[key]

    def get(self, key: str) -> bytes | None:
        with self._lock:
            return self._live(key)

    def set(self, key: str, value: bytes, ttl_s: float | None = None) -> None:
        with self._lock:
            self._data[key] = (value, self._expiry(ttl_s))
            self._sweep()

    def set_if_absent(self, key: str, value: bytes, ttl_s: float | None = None) -> bool:
        with self._lock:
            if self._live(key) is not None:
                return False
            self._data[key] = (value, self._expiry(ttl_s))
            self._sweep()
            return True

    def set_bounded(self, index: str, items: Mapping[str, bytes], *, ttl_s: float, max_items: int,
                    max_bytes: int | None = None) -> Bounded:
        expires = self._expiry(ttl_s)
        with self._lock:
            return self._set_bounded(index, items, expires, max_items, max_bytes)

    def _set_bounded(self, index: str, items: Mapping[str, bytes], expires: float | None, max_items: int,
                     max_bytes: int | None) -> Bounded:
        noted, total = self._indexes.setdefault(index, (OrderedDict(), [0]))
        refused = []
        for key, value in items.items():
            if self._live(key) is not None:
                refused.append(key)
                continue
            self._data[key] = (value, expires)
            size = len(key) + len(value)
            total[0] += size - noted.pop(key, 0)
            noted[key] = size
            self._sweep()
        evicted = []
        while noted and (len(noted) > max_items or (max_bytes is not None and total[0] > max_bytes)):
            key, size = noted.popitem(last=False)
            total[0] -= size
            if self._live(key) is not None:
                del self._data[key]
                evicted.append(key)
        return Bounded(refused, evicted)

    def delete(self, key: str) -> bool:
        with self._lock:
            return self._delete(key)

    def delete_if(self, key: str, value: bytes) -> bool:
        with self._lock:
            return self._live(key) == value and self._delete(key)

    def _delete(self, key: str) -> bool:
        found = self._data.pop(key, None) is not None
        return self._lists.pop(key, None) is not None or found

    def _append(self, key: str, value: bytes, max_items: int | None) -> None:
        items = self._lists.setdefault(key, [])
        items.append(value)
        if max_items is not None and len(items) > max_items:
            del items[: len(items) - max_items]

    def apply(self, writes: Sequence[Write]) -> None:
        expiries = [self._expiry(w.ttl_s) for w in writes]  # validated before anything changes
        with self._lock:
            self._sweep()
            for write, expires in zip(writes, expiries, strict=True):
                if write.op == "set" and write.index is not None:
                    self._set_bounded(write.index, {write.key: write.value}, expires, write.max_items or UNBOUNDED,
                                      write.max_bytes)
                elif write.op == "set":
                    self._data[write.key] = (write.value, expires)
                elif write.op == "delete":
                    self._delete(write.key)
                else:
                    self._append(write.key, write.value, write.max_items)

    def items(self, key: str) -> list[bytes]:
        with self._lock:
            return list(self._lists.get(key, []))
