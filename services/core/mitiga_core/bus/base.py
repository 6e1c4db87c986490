"""The message bus interface: publish, and consume with a consumer group, committing after handling."""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    from prometheus_client.registry import Collector

    from mitiga_core.events import Envelope


@dataclass(frozen=True, slots=True)
class Record:
    """A consumed message with its position."""

    topic: str
    partition: int
    offset: int
    envelope: Envelope


class Consumer(abc.ABC):
    """A member of a consumer group. Offsets advance for the group only on :meth:`commit`."""

    @abc.abstractmethod
    def poll(self, timeout_s: float = 1.0, max_records: int = 500) -> list[Record]:
        """Return up to ``max_records`` records, waiting at most ``timeout_s`` for the first."""

    @abc.abstractmethod
    def commit(self) -> None:
        """Commit the positions of every record returned so far."""

    @abc.abstractmethod
    def close(self) -> None:
        """Leave the group. Uncommitted records are delivered again to the group."""

    def lag(self) -> dict[tuple[str, int], int]:
        """Records not yet consumed, per (topic, partition), as of the last poll (empty when unknown)."""
        return {}

    def assignment(self) -> frozenset[tuple[str, int]]:
        """The (topic, partition) pairs this member holds now; they change when the group rebalances."""
        return frozenset()

    def owns(self, topic: str, key: str) -> bool:
        """Whether this member holds the partition that records keyed ``key`` go to on ``topic``."""
        return True


class Bus(abc.ABC):
    """Publishes envelopes to topics and hands out consumers."""

    @abc.abstractmethod
    def publish(self, topic: str, envelope: Envelope) -> None:
        """Send one envelope. Raises on a failure the caller must count."""

    @abc.abstractmethod
    def subscribe(self, topics: Sequence[str], group_id: str) -> Consumer:
        """Join ``group_id`` on ``topics``."""

    def publish_durably(self, topic: str, envelope: Envelope, timeout_s: float = 10.0) -> None:
        """Send one envelope and wait until the bus has it; raises ``Unavailable`` when it could not be stored
        (a caller that commits an offset only after this returns never loses the record)."""
        self.publish(topic, envelope)
        self.flush(timeout_s)

    def flush(self, timeout_s: float = 10.0) -> None:  # noqa: B027 - optional hook
        """Wait until published envelopes are delivered."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    def collectors(self) -> list[Collector]:
        """Prometheus collectors of this bus (delivery failures), for the service to register."""
        return []
