"""A non-blocking event publisher: a bounded buffer drained by one thread onto the bus.

``offer`` never blocks the caller. When the buffer is full the event is dropped and counted in
``mitiga_events_dropped_total{topic,reason="buffer_full"}``; a bus error counts ``reason="publish_error"``.
The event is built (protobuf) on the publisher thread, off the request path.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge

from mitiga_core.events import encode

if TYPE_CHECKING:
    from collections.abc import Callable

    from google.protobuf.message import Message

    from mitiga_core.bus import Bus

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Pending:
    topic: str
    key: str | None
    build: Callable[[], Message]


class EventPublisher:
    def __init__(self, bus: Bus, *, source: str, maxsize: int, registry: CollectorRegistry,
                 linger_s: float = 0.02) -> None:
        self._bus = bus
        self._linger_s = linger_s
        self._source = source
        self._queue: queue.Queue[_Pending | None] = queue.Queue(maxsize=maxsize)
        self._thread: threading.Thread | None = None
        self.published = Counter("mitiga_events_published", "Events published to the bus.", ["topic"],
                                 registry=registry)
        self.dropped = Counter("mitiga_events_dropped", "Events dropped before reaching the bus.",
                               ["topic", "reason"], registry=registry)
        depth = Gauge("mitiga_event_buffer_depth", "Events waiting in the publish buffer.", registry=registry)
        depth.set_function(self._queue.qsize)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="event-publisher", daemon=True)
        self._thread.start()

    def offer(self, topic: str, key: str | None, build: Callable[[], Message]) -> bool:
        """Queue an event; False (and counted) when the buffer is full."""
        try:
            self._queue.put_nowait(_Pending(topic, key, build))
        except queue.Full:
            self.dropped.labels(topic, "buffer_full").inc()
            return False
        return True

    def pending(self) -> int:
        return self._queue.qsize()

    def _run(self) -> None:
        # Work in bursts, at most every ``linger_s``: waking per event would make this thread fight the
        # request threads for the GIL on every request.
        while True:
            batch = [self._queue.get()]
            while len(batch) < 1000:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            for item in batch:
                if item is None:
                    return
                self._publish(item)
            time.sleep(self._linger_s)

    def _publish(self, item: _Pending) -> None:
        try:
            self._bus.publish(item.topic, encode(item.build(), source=self._source, key=item.key))
            self.published.labels(item.topic).inc()
        except Exception:
            self.dropped.labels(item.topic, "publish_error").inc()
            log.exception("event publish failed", extra={"topic": item.topic})

    def stop(self, timeout_s: float = 10.0) -> None:
        """Deliver what is buffered, then stop and flush the bus."""
        if self._thread is None:
            return
        self._queue.put(None)
        self._thread.join(timeout_s)
        self._thread = None
        self._bus.flush(timeout_s)
