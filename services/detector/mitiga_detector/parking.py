"""Feedback that arrives before the event of its prediction waits here for it.

Inference and feedback events travel on different topics, so the detector may read a request's ground truth before
its prediction. Such feedback is parked for up to ``feedback_wait_s`` seconds (wall clock, so the wait survives a
restart through the detector's checkpoint, one per model so that a model moves between detector replicas with its
parked feedback); the prediction's arrival joins it. Feedback that waits longer, or that
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
        self._items: dict[tuple[str, str], tuple[list[float], float, str]] = {}
        """(model, request id) -> (ground truth, deadline, label source), oldest first."""
        self._changed: set[str] = set()
        """Models whose items changed since their last :meth:`snapshot`."""

    def __len__(self) -> int:
        return len(self._items)

    def park(self, model: str, request_id: str, truth: list[float], source: str = "") -> list[str]:
        """Park the feedback (from the label ``source``); returns the models of the items given up to make room (or
        this one, when nothing may wait)."""
        if self._wait_s <= 0 or self._max <= 0:
            return [model]
        self._drop((model, request_id))  # a newer ground truth for the same request replaces the older
        self._items[(model, request_id)] = (truth, self._clock() + self._wait_s, source)
        self._bytes += _size(model, request_id, truth)
        self._changed.add(model)
        evicted = []
        while self._items and (len(self._items) > self._max or self._bytes > self._max_bytes):
            oldest = next(iter(self._items))
            self._drop(oldest)
            evicted.append(oldest[0])
        self._changed.update(evicted)
        return evicted

    def _drop(self, key: tuple[str, str]) -> tuple[list[float], float, str] | None:
        item = self._items.pop(key, None)
        if item is not None:
            self._bytes -= _size(key[0], key[1], item[0])
        return item

    @property
    def bytes(self) -> int:
        """About how much memory the parked items take."""
        return self._bytes

    def claim(self, model: str, request_id: str) -> tuple[list[float], str] | None:
        """The parked ground truth of this request and its label source, removed; None when none waits."""
        item = self._drop((model, request_id))
        if item is None:
            return None
        self._changed.add(model)
        return item[0], item[2]

    def expire(self) -> list[str]:
        """Give up the items whose wait is over; returns their models. Items are kept oldest first, and all wait
        equally long, so the expired ones are a prefix."""
        now = self._clock()
        gone = []
        for key, (_, deadline, _) in self._items.items():
            if deadline > now:
                break
            gone.append(key)
        for key in gone:
            self._drop(key)
        models = [model for model, _ in gone]
        self._changed.update(models)
        return models

    def changed(self) -> list[str]:
        """The models whose items changed since their last snapshot."""
        return sorted(self._changed)

    def snapshot(self, model: str) -> list[list[Any]]:
        """One model's items, as :meth:`restore` takes them."""
        self._changed.discard(model)
        return [[m, request_id, truth, deadline, source]
                for (m, request_id), (truth, deadline, source) in self._items.items() if m == model]

    def restore(self, model: str, items: list[list[Any]], *, changed: bool = False) -> None:
        """Put back one model's items (its others are replaced); ``changed``: to be saved again."""
        for key in [k for k in self._items if k[0] == model]:
            self._drop(key)
        for m, r, t, d, *source in items:  # checkpoints written before label sources have four fields
            if str(m) == model:
                truth = [float(v) for v in t]
                self._items[(model, str(r))] = (truth, float(d), str(source[0]) if source else "")
                self._bytes += _size(model, str(r), truth)
        self._items = dict(sorted(self._items.items(), key=lambda item: item[1][1]))  # oldest first, for expire
        if changed:
            self._changed.add(model)
        else:
            self._changed.discard(model)

    def clear(self) -> None:
        """Forget every item (they are in the checkpoint)."""
        self._items.clear()
        self._bytes = 0
        self._changed.clear()
