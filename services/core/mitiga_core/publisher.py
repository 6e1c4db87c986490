"""A non-blocking event publisher: a bounded buffer drained by one thread onto the bus.

``offer`` never blocks the caller. When the buffer is full the event is dropped and counted in
``mitiga_events_dropped_total{topic,reason="buffer_full"}``; a bus error counts ``reason="publish_error"``.
The event is built (protobuf) on the publisher thread, off the request path. Topics listed in ``batch_as`` are
sent as one batch message per burst and key (at most ``max_batch`` events each); the counters still count events.
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
                 linger_s: float = 0.02, batch_as: dict[str, Callable[[list[Message]], Message]] | None = None,
                 max_batch: int = 256) -> None:
        self._bus = bus
        self._batch_as = batch_as or {}
        self._max_batch = max_batch
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
            items = [item for item in batch if item is not None]
            self._publish_burst(items)
            if len(items) < len(batch):
                return
            time.sleep(self._linger_s)

    def _publish_burst(self, items: list[_Pending]) -> None:
        groups: dict[tuple[str, str | None], list[_Pending]] = {}
        for item in items:
            if item.topic in self._batch_as:
                groups.setdefault((item.topic, item.key), []).append(item)
            else:
                self._publish(item)
        for (topic, key), group in groups.items():
            for lo in range(0, len(group), self._max_batch):
                chunk = group[lo:lo + self._max_batch]
                wrap = self._batch_as[topic]

                def build(c: list[_Pending] = chunk, w: Callable[[list[Message]], Message] = wrap) -> Message:
                    return w([i.build() for i in c])

                self._publish(_Pending(topic, key, build), len(chunk))

    def _publish(self, item: _Pending, events: int = 1) -> None:
        try:
            self._bus.publish(item.topic, encode(item.build(), source=self._source, key=item.key))
            self.published.labels(item.topic).inc(events)
        except Exception:
            self.dropped.labels(item.topic, "publish_error").inc(events)
            log.exception("event publish failed", extra={"topic": item.topic})

    def stop(self, timeout_s: float = 10.0) -> None:
        """Deliver what is buffered, then stop and flush the bus."""
        if self._thread is None:
            return
        self._queue.put(None)
        self._thread.join(timeout_s)
        self._thread = None
        self._bus.flush(timeout_s)
