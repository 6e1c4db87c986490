"""A consumer loop on its own thread: poll, handle each record, run an after-batch hook, then commit.

Offsets are committed only after a batch is handled (at least once); handlers make redelivery harmless. A handler
that cannot make progress now (Redis unreachable: :class:`~mitiga_core.errors.Unavailable`) raises; the loop then
leaves the group without committing, waits with exponential backoff and joins again, so the batch is delivered
again from the last committed offsets. The same happens when the broker cannot be reached to subscribe.

``on_assigned`` is called with the consumer before the records of a poll are handled whenever the member's
partitions changed (a rebalance: a replica joined or left the group) and after every join, so a handler that keeps
state per key can drop what it no longer owns, and go back to its last checkpoint when records are delivered again.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from mitiga_core.bus.base import Bus, Consumer, Record

log = logging.getLogger(__name__)


class ConsumerLoop:
    def __init__(self, bus: Bus, topics: Sequence[str], group_id: str, handle: Callable[[Record], None], *,
                 name: str, after_batch: Callable[[], None] | None = None,
                 on_assigned: Callable[[Consumer], None] | None = None, poll_timeout_s: float = 0.5,
                 max_records: int = 500, max_backoff_s: float = 10.0) -> None:
        self._bus = bus
        self._topics = list(topics)
        self._group = group_id
        self._handle = handle
        self._after_batch = after_batch
        self._on_assigned = on_assigned
        self._assigned: frozenset[tuple[str, int]] | None = None
        """The partitions last reported to ``on_assigned``; None after (re)joining."""
        self._name = name
        self._poll_timeout_s = poll_timeout_s
        self._max_records = max_records
        self._max_backoff_s = max_backoff_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lag: dict[tuple[str, int], int] = {}
        self.retries = 0
        """Times the loop had to leave the group and join again."""

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        consumer: Consumer | None = None
        backoff = 0.25
        while not self._stop.is_set():
            try:
                if consumer is None:
                    consumer = self._bus.subscribe(self._topics, self._group)
                    self._assigned = None
                self._step(consumer)
                backoff = 0.25
            except Exception as exc:  # retryable by contract: leave, wait, join again from committed offsets
                self.retries += 1
                log.warning("consumer loop interrupted; joining again", extra={
                    "loop": self._name, "reason": f"{type(exc).__name__}: {exc}", "retry_in_s": backoff})
                if consumer is not None:
                    _close_quietly(consumer)
                    consumer = None
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self._max_backoff_s)
        if consumer is not None:
            _close_quietly(consumer)

    def _step(self, consumer: Consumer) -> None:
        records = consumer.poll(timeout_s=self._poll_timeout_s, max_records=self._max_records)
        self.lag = consumer.lag()
        assigned = consumer.assignment()
        if self._on_assigned is not None and assigned != self._assigned:
            self._on_assigned(consumer)
        self._assigned = assigned
        for record in records:
            if self._stop.is_set():
                return  # not committed: the rest is delivered again after a restart
            self._handle(record)
        if records:
            if self._after_batch is not None:
                self._after_batch()
            consumer.commit()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)


def _close_quietly(consumer: Consumer) -> None:
    try:
        consumer.close()
    except Exception:  # closing a consumer whose broker is gone may fail; it is discarded either way
        log.debug("consumer close failed", exc_info=True)
