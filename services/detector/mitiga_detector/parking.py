"""Feedback that arrives before the event of its prediction waits here for it.

Inference and feedback events travel on different topics, so the detector may read a request's ground truth before
its prediction. Such feedback is parked for up to ``feedback_wait_s`` seconds (wall clock, so the wait survives a
restart through the detector's checkpoint); the prediction's arrival joins it. Feedback that waits longer, or that
is pushed out because ``feedback_parked_max`` items (or ``feedback_parked_max_bytes``) already wait, is unmatched
(``no_prediction``), and counted.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable


def _size(model: str, request_id: str, truth: list[float]) -> int:
    """An item's memory, roughly: its values, its key, and the containers around them."""
    return 32 * len(truth) + len(model) + len(request_id) + 200


class FeedbackParking:
    def __init__(self, wait_s: float, max_items: int, clock: Callable[[], float] = time.time,
                 max_bytes: int = 64 << 20) -> None:
        self._wait_s = wait_s
        self._max = max_items
        self._max_bytes = max_bytes
        self._bytes = 0
        self._clock = clock
        self._items: dict[tuple[str, str], tuple[list[float], float]] = {}
        """(model, request id) -> (ground truth, deadline), oldest first."""
        self.changed = False
        """True when the items changed since the last :meth:`snapshot`."""

    def __len__(self) -> int:
        return len(self._items)

    def park(self, model: str, request_id: str, truth: list[float]) -> list[str]:
        """Park the feedback; returns the models of the items given up to make room (or this one, when nothing may
        wait)."""
        if self._wait_s <= 0 or self._max <= 0:
            return [model]
        self._drop((model, request_id))  # a newer ground truth for the same request replaces the older
        self._items[(model, request_id)] = (truth, self._clock() + self._wait_s)
        self._bytes += _size(model, request_id, truth)
        self.changed = True
        evicted = []
        while self._items and (len(self._items) > self._max or self._bytes > self._max_bytes):
            oldest = next(iter(self._items))
            self._drop(oldest)
            evicted.append(oldest[0])
        return evicted

    def _drop(self, key: tuple[str, str]) -> tuple[list[float], float] | None:
        item = self._items.pop(key, None)
        if item is not None:
            self._bytes -= _size(key[0], key[1], item[0])
        return item

    @property
    def bytes(self) -> int:
        """About how much memory the parked items take."""
        return self._bytes

    def claim(self, model: str, request_id: str) -> list[float] | None:
        """The parked ground truth of this request, removed; None when none waits."""
        item = self._drop((model, request_id))
        if item is None:
            return None
        self.changed = True
        return item[0]

    def expire(self) -> list[str]:
        """Give up the items whose wait is over; returns their models. Items are kept oldest first, and all wait
        equally long, so the expired ones are a prefix."""
        now = self._clock()
        gone = []
        for key, (_, deadline) in self._items.items():
            if deadline > now:
                break
            gone.append(key)
        for key in gone:
            self._drop(key)
        self.changed = self.changed or bool(gone)
        return [model for model, _ in gone]

    def snapshot(self) -> list[list[Any]]:
        self.changed = False
        return [[model, request_id, truth, deadline] for (model, request_id), (truth, deadline) in self._items.items()]

    def restore(self, items: list[list[Any]]) -> None:
        self._items = {(str(m), str(r)): ([float(v) for v in t], float(d)) for m, r, t, d in items}
        self._bytes = sum(_size(m, r, t) for (m, r), (t, _) in self._items.items())
        self.changed = False
