"""Writes held back until a checkpoint, then applied together with it (:meth:`StateStore.apply`).

A consumer that commits offsets after a batch must not let the batch's side effects reach the state store before
the checkpoint that covers them: if it dies in between, the redelivered events would find their traces (an event
marked as seen, a prediction already taken by its feedback) and be skipped, and what they carried would be lost.
So the consumer stages those writes here, reads through them while the batch runs, and applies them in the same
all-or-none batch as its checkpoint. When that fails the writes stay staged and go with the next attempt.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mitiga_core.state.base import Write

if TYPE_CHECKING:
    from mitiga_core.state.base import StateStore

class StagedWrites:
    def __init__(self) -> None:
        self._writes: list[Write] = []
        self._keys: dict[str, bytes | None] = {}
        """The staged value of each key set or deleted (``None``), for reads through the stage."""

    def __len__(self) -> int:
        return len(self._writes)

    def set(self, key: str, value: bytes, ttl_s: float | None = None, *, index: str | None = None,
            max_items: int | None = None) -> None:
        """Stage a set; with an ``index``, a bounded one (stored if absent, the index's oldest keys beyond
        ``max_items`` removed: :meth:`StateStore.set_bounded`)."""
        self._writes.append(Write("set", key, value, ttl_s=ttl_s, index=index, max_items=max_items))
        self._keys[key] = value

    def delete(self, key: str) -> None:
        self._writes.append(Write("delete", key))
        self._keys[key] = None

    def add(self, write: Write) -> None:
        """Stage a write made elsewhere (an append; sets and deletes go through :meth:`set` / :meth:`delete`)."""
        if write.op != "append":
            raise ValueError("stage sets and deletes with set() and delete(), so reads see them")
        self._writes.append(write)

    def get(self, key: str, state: StateStore) -> bytes | None:
        """The key's value as it will be once the stage is applied."""
        if key in self._keys:
            return self._keys[key]
        return state.get(key)

    def clear(self) -> None:
        """Drop what is staged (the events that made it will be delivered again)."""
        self._writes.clear()
        self._keys.clear()

    def apply(self, state: StateStore, *extra: Write) -> None:
        """Apply ``extra`` (the checkpoint) and the staged writes in one batch; the stage is emptied only when the
        batch succeeded."""
        state.apply([*extra, *self._writes])
        self._writes.clear()
        self._keys.clear()
