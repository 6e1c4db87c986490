"""An in-memory bus for the standalone mode and unit tests: one partition per topic, offsets per group.

Each topic keeps its newest ``retention`` messages (like a size-based Kafka retention), so a long-running standalone
stack does not grow without bound. A consumer that fell behind the retained range resumes at its start; the skipped
messages are counted in ``expired``.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from mitiga_core.bus.base import Bus, Consumer, Record

if TYPE_CHECKING:
    from collections.abc import Sequence

    from mitiga_core.events import Envelope


class InMemoryBus(Bus):
    """Append-only topic logs shared by every consumer in the process."""

    def __init__(self, retention: int = 100_000) -> None:
        if retention < 1:
            raise ValueError("retention must be positive")
        self._retention = retention
        self._logs: dict[str, list[Envelope]] = {}
        self._base: dict[str, int] = {}
        """Offset of each topic's oldest retained message."""
        self._committed: dict[tuple[str, str], int] = {}
        self._cond = threading.Condition()
        self.expired = 0

    def publish(self, topic: str, envelope: Envelope) -> None:
        with self._cond:
            log = self._logs.setdefault(topic, [])
            log.append(envelope)
            if len(log) > 2 * self._retention:  # trim in bulk: amortised O(1) per message
                drop = len(log) - self._retention
                del log[:drop]
                self._base[topic] = self._base.get(topic, 0) + drop
            self._cond.notify_all()

    def subscribe(self, topics: Sequence[str], group_id: str) -> Consumer:
        return _InMemoryConsumer(self, list(topics), group_id)

    def messages(self, topic: str) -> list[Envelope]:
        """A copy of a topic's retained log (for tests and reports)."""
        with self._cond:
            return list(self._logs.get(topic, []))

    # used by the consumer, under the condition's lock
    def _read(self, positions: dict[str, int], max_records: int) -> list[Record]:
        records: list[Record] = []
        for topic, start in positions.items():
            log, base = self._logs.get(topic, []), self._base.get(topic, 0)
            if start < base:
                self.expired += base - start
                start = positions[topic] = base
            for offset in range(start, min(base + len(log), start + max_records - len(records))):
                records.append(Record(topic, 0, offset, log[offset - base]))
        return records


class _InMemoryConsumer(Consumer):
    def __init__(self, bus: InMemoryBus, topics: list[str], group_id: str) -> None:
        self._bus = bus
        self._group = group_id
        with bus._cond:
            self._positions = {t: bus._committed.get((group_id, t), 0) for t in topics}
        self._closed = False

    def poll(self, timeout_s: float = 1.0, max_records: int = 500) -> list[Record]:
        deadline = time.monotonic() + timeout_s
        with self._bus._cond:
            while not self._closed:
                records = self._bus._read(self._positions, max_records)
                if records:
                    for record in records:
                        self._positions[record.topic] = record.offset + 1
                    return records
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._bus._cond.wait(remaining)
        return []

    def commit(self) -> None:
        with self._bus._cond:
            for topic, position in self._positions.items():
                self._bus._committed[(self._group, topic)] = position

    def lag(self) -> dict[tuple[str, int], int]:
        with self._bus._cond:
            return {(t, 0): self._bus._base.get(t, 0) + len(self._bus._logs.get(t, [])) - p
                    for t, p in self._positions.items()}

    def assignment(self) -> frozenset[tuple[str, int]]:
        return frozenset((t, 0) for t in self._positions)

    def close(self) -> None:
        with self._bus._cond:
            self._closed = True
            self._bus._cond.notify_all()
