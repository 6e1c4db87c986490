"""A non-blocking event publisher: a bounded buffer drained by one thread onto the bus.

``offer`` never blocks the caller. When the buffer is full the event is dropped and counted in
``mitiga_events_dropped_total{topic,reason="buffer_full"}``; a bus error counts ``reason="publish_error"``.
The event is built (protobuf) on the publisher thread, off the request path. Topics listed in ``batch_as`` are
sent as one batch message per burst and key (at most ``max_batch`` events each); the counters still count events.

Bounded in bytes as well as in events: the buffer holds at most ``max_queue_bytes`` (by the size each offer
declares), every message is split to at most ``max_message_bytes``, and an event that alone is larger is not sent
(``reason="too_large"``) instead of making the broker refuse a whole batch.
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
    size: int = 0


class EventPublisher:
    def __init__(self, bus: Bus, *, source: str, maxsize: int, registry: CollectorRegistry,
                 linger_s: float = 0.02, batch_as: dict[str, Callable[[list[Message]], Message]] | None = None,
                 max_batch: int = 256, max_message_bytes: int = 1_000_000, max_queue_bytes: int = 256 << 20) -> None:
        self._bus = bus
        self._batch_as = batch_as or {}
        self._max_batch = max_batch
        self._max_message = max_message_bytes
        self._max_queue_bytes = max_queue_bytes
        self._queued_bytes = 0
        self._bytes_lock = threading.Lock()
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

    def offer(self, topic: str, key: str | None, build: Callable[[], Message], size: int = 0) -> bool:
        """Queue an event of about ``size`` bytes; False (and counted) when the buffer is full."""
        with self._bytes_lock:
            full = self._queued_bytes + size > self._max_queue_bytes
            if not full:
                self._queued_bytes += size
        if full:
            self.dropped.labels(topic, "buffer_full").inc()
            return False
        try:
            self._queue.put_nowait(_Pending(topic, key, build, size))
        except queue.Full:
            self._release(size)
            self.dropped.labels(topic, "buffer_full").inc()
            return False
        return True

    def _release(self, size: int) -> None:
        with self._bytes_lock:
            self._queued_bytes -= size

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
            self._release(sum(item.size for item in items))
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
                self._publish(item.topic, item.key, item)
        for (topic, key), group in groups.items():
            for chunk in self._chunks(topic, group):
                self._publish(topic, key, self._batch_as[topic](chunk), len(chunk))

    def _chunks(self, topic: str, group: list[_Pending]) -> list[list[Message]]:
        """The group's events in batches of at most ``max_batch`` events and ``max_message_bytes``."""
        chunks: list[list[Message]] = [[]]
        size = 0
        for item in group:
            try:
                event = item.build()
            except Exception:
                self.dropped.labels(topic, "publish_error").inc()
                log.exception("event could not be built", extra={"topic": topic})
                continue
            framed = event.ByteSize() + 8  # the field tag and length of one event in the batch
            if framed > self._max_message:
                self._too_large(topic, framed)
                continue
            if chunks[-1] and (len(chunks[-1]) >= self._max_batch or size + framed > self._max_message):
                chunks.append([])
                size = 0
            chunks[-1].append(event)
            size += framed
        return [chunk for chunk in chunks if chunk]

    def _too_large(self, topic: str, size: int) -> None:
        self.dropped.labels(topic, "too_large").inc()
        log.warning("event too large for the bus: not sent", extra={"topic": topic, "bytes": size,
                                                                    "limit": self._max_message})

    def _publish(self, topic: str, key: str | None, message: Message | _Pending, events: int = 1) -> None:
        """Send one message; a single event is checked against the size limit here (a batch was sized by
        ``_chunks``, event by event)."""
        try:
            event = message.build() if isinstance(message, _Pending) else message
            if isinstance(message, _Pending):
                size = event.ByteSize()
                if size > self._max_message:
                    self._too_large(topic, size)
                    return
            self._bus.publish(topic, encode(event, source=self._source, key=key))
            self.published.labels(topic).inc(events)
        except Exception:
            self.dropped.labels(topic, "publish_error").inc(events)
            log.exception("event publish failed", extra={"topic": topic})

    def stop(self, timeout_s: float = 10.0) -> None:
        """Deliver what is buffered, then stop and flush the bus."""
        if self._thread is None:
            return
        self._queue.put(None)
        self._thread.join(timeout_s)
        self._thread = None
        self._bus.flush(timeout_s)
