"""The state store interface: bytes by key, with optional time to live and an atomic set-if-absent, keys kept in a
bounded index (oldest evicted first), bounded append-only lists, and batches of writes applied all together, once."""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence


UNBOUNDED = 1 << 62
"""A count no index reaches (a bounded ``set`` in a batch without ``max_items``)."""


@dataclass(frozen=True, slots=True)
class Write:
    """One change in a batch for :meth:`StateStore.apply`."""

    op: Literal["set", "delete", "append"]
    key: str
    value: bytes = b""
    ttl_s: float | None = None
    """For ``set``: expiry in seconds."""
    max_items: int | None = None
    """For ``append``: keep only the newest this many items. For a ``set`` with an ``index``: its bound."""
    index: str | None = None
    """For ``set``: store only if absent, and note the key in this bounded index (:meth:`StateStore.set_bounded`,
    with ``max_items`` and ``max_bytes``)."""
    max_bytes: int | None = None


@dataclass(frozen=True, slots=True)
class Bounded:
    """What :meth:`StateStore.set_bounded` did."""

    refused: list[str]
    """The keys not stored: they were present already."""
    evicted: list[str]
    """The oldest keys of the index removed to keep it within its bounds (keys that had expired or been deleted
    meanwhile are not listed: nothing was lost with them)."""


class StateStore(abc.ABC):
    @abc.abstractmethod
    def get(self, key: str) -> bytes | None:
        """The value, or ``None`` when absent or expired."""

    @abc.abstractmethod
    def set(self, key: str, value: bytes, ttl_s: float | None = None) -> None:
        """Store ``value``; it expires after ``ttl_s`` seconds when given."""

    @abc.abstractmethod
    def set_if_absent(self, key: str, value: bytes, ttl_s: float | None = None) -> bool:
        """Store only if the key is absent (a lock). True when this call stored it."""

    def set_many(self, items: Mapping[str, bytes], ttl_s: float | None = None) -> None:
        """Store several keys (one round trip where the store allows it)."""
        for key, value in items.items():
            self.set(key, value, ttl_s)

    def set_many_if_absent(self, items: Mapping[str, bytes], ttl_s: float | None = None) -> list[str]:
        """Store each key only if absent (one round trip where the store allows it); returns the keys not stored."""
        return [key for key, value in items.items() if not self.set_if_absent(key, value, ttl_s)]

    @abc.abstractmethod
    def set_bounded(self, index: str, items: Mapping[str, bytes], *, ttl_s: float, max_items: int,
                    max_bytes: int | None = None) -> Bounded:
        """Store each key only if absent (as :meth:`set_many_if_absent`) and note it in ``index``, oldest first; then
        remove the oldest noted keys until at most ``max_items`` keys, of at most ``max_bytes`` (keys and values;
        None: no byte bound, and no sizes kept) are noted. All in one atomic step. The index expires with its newest
        key: a group of keys (one model's stored predictions, say) stays bounded whatever the traffic, where a TTL
        alone bounds it only by rate x TTL."""

    @abc.abstractmethod
    def delete(self, key: str) -> bool:
        """Remove the key. True when it existed."""

    @abc.abstractmethod
    def delete_if(self, key: str, value: bytes) -> bool:
        """Remove the key only while it holds ``value``, in one atomic step (a lock released by its owner only: a GET
        then a DELETE could remove the lock another owner took in between). True when this call removed it."""

    def append(self, key: str, value: bytes, max_items: int | None = None) -> None:
        """Append to the list at ``key``, keeping only the newest ``max_items`` (once, even when retried)."""
        self.apply([Write("append", key, value, max_items=max_items)])

    @abc.abstractmethod
    def items(self, key: str) -> list[bytes]:
        """The list at ``key``, oldest first (empty when absent)."""

    @abc.abstractmethod
    def apply(self, writes: Sequence[Write]) -> None:
        """Apply the writes in order, all or none, and at most once even when a reply is lost and the call retried.

        A consumer uses it to store its checkpoint together with the side effects of the events it covers, so a
        crash before the checkpoint leaves no trace of them and their redelivery is processed afresh.
        """

    def memory(self) -> tuple[int, int] | None:
        """(bytes used, the store's limit, 0 when none), where the store can tell; None otherwise."""
        return None

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""
