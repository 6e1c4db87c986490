"""Many models in one replica within a memory budget (``MITIGA_MODEL_MEMORY_BUDGET``): which models to unload.

A model's cost is what its load added to the process' resident memory (at least its weights), measured while no
other model loads (loads run one at a time under a budget) and after the memory of unloaded models went back to the
system. The budget keeps the models used most recently: past
it, the least recently used model that may be unloaded is. Never unloaded: the pinned models (``MITIGA_MODELS``,
``MITIGA_MODEL_VERSIONS``), a model with another version loaded beside its current one (a candidate on live trial,
or a version an operator loaded), and the model whose load made room. If only those remain the load goes ahead
over the budget, and the gauges show by how much.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from collections import OrderedDict
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

_PAGE = os.sysconf("SC_PAGE_SIZE")


_LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")


def trim() -> None:
    """Hand the memory that unloaded models freed back to the system (glibc ``malloc_trim``): without it a new load
    reuses those pages and its resident memory grows by nothing, so it would seem to cost nothing."""
    release = getattr(_LIBC, "malloc_trim", None)  # glibc only: elsewhere the measure is rougher
    if release is not None:
        release(0)


def resident_bytes() -> int:
    """This process' resident memory (Linux ``/proc/self/statm``)."""
    with open("/proc/self/statm", encoding="ascii") as f:
        return int(f.read().split()[1]) * _PAGE


class MemoryBudget:
    def __init__(self, limit: int, pinned: Iterable[str]) -> None:
        self.limit = limit
        self.pinned = frozenset(pinned)
        self._cost: dict[str, int] = {}
        self._order: OrderedDict[str, None] = OrderedDict()
        """Loaded models, least recently used first."""

    def touch(self, name: str) -> None:
        """A request used ``name``."""
        if name in self._order:
            self._order.move_to_end(name)

    def loaded(self, name: str, cost: int) -> None:
        self._cost[name] = self._cost.get(name, 0) + cost
        self._order[name] = None
        self._order.move_to_end(name)

    def unloaded(self, name: str) -> None:
        self._cost.pop(name, None)
        self._order.pop(name, None)

    @property
    def used(self) -> int:
        return sum(self._cost.values())

    @property
    def count(self) -> int:
        return len(self._order)

    def victims(self, keep: str, evictable: Callable[[str], bool]) -> list[str]:
        """The least recently used models to unload so that the rest fit, never ``keep``, a pinned one or one
        ``evictable`` refuses; fewer (possibly none) when only those remain."""
        over = self.used - self.limit
        chosen: list[str] = []
        for name in self._order:
            if over <= 0:
                break
            if name == keep or name in self.pinned or not evictable(name):
                continue
            chosen.append(name)
            over -= self._cost[name]
        return chosen
