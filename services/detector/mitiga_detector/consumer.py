"""The bus transport: consumes inference and feedback events into the core, commits after handling.

An event the core cannot use (undecodable, schema-invalid, for an unknown model) goes to ``mitiga.dlq`` with the
reason in a header and is counted; the consumer keeps going.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import replace
from typing import TYPE_CHECKING

from mitiga_core.errors import EventDecodeError
from mitiga_core.events import Topic

if TYPE_CHECKING:
    from mitiga_core.bus import Bus, Consumer, Record
    from mitiga_detector.core import DetectorCore

log = logging.getLogger(__name__)


class DetectorConsumer:
    def __init__(self, bus: Bus, core: DetectorCore, group_id: str) -> None:
        self._bus = bus
        self._core = core
        self._group = group_id
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.alive = False

    def start(self) -> None:
        consumer = self._bus.subscribe([Topic.INFERENCE, Topic.FEEDBACK], self._group)
        self._thread = threading.Thread(target=self._run, args=(consumer,), name="detector-consumer", daemon=True)
        self.alive = True
        self._thread.start()

    def _run(self, consumer: Consumer) -> None:
        try:
            while not self._stop.is_set():
                records = consumer.poll(timeout_s=0.5)
                for record in records:
                    self.process(record)
                if records:
                    consumer.commit()
        finally:
            consumer.close()
            self.alive = False

    def process(self, record: Record) -> None:
        try:
            self._core.handle(record.envelope)
        except EventDecodeError as exc:
            self._dead_letter(record, "invalid", str(exc))
        except Exception as exc:  # a bug must not stall the stream or lose the event
            log.exception("event processing failed", extra={"topic": record.topic, "offset": record.offset})
            self._dead_letter(record, "error", f"{type(exc).__name__}: {exc}")

    def _dead_letter(self, record: Record, kind: str, reason: str) -> None:
        self._core.metrics.rejected.labels(kind).inc()
        headers = {**record.envelope.headers, "mitiga_dlq_reason": reason[:1000], "mitiga_dlq_topic": record.topic,
                   "mitiga_dlq_offset": str(record.offset)}
        self._bus.publish(Topic.DLQ, replace(record.envelope, headers=headers))
        log.warning("event dead-lettered", extra={"topic": record.topic, "reason": reason})

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
