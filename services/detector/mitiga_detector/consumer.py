"""The bus transport: consumes inference, feedback and retrain-progress events into the core, checkpoints the
core's state and then commits (see :class:`~mitiga_core.bus.loop.ConsumerLoop`).

An event the core cannot use (undecodable, schema-invalid, for an unknown model) goes to ``mitiga.dlq`` with the
reason in a header and is counted; the consumer keeps going. When Redis is unreachable the batch is not committed
and is delivered again once it is back.

Several detector replicas share the models through the consumer group: records are keyed by model, so a model's
records all reach the one member that holds its partition. When the group rebalances, the core goes back to its
checkpoint and drops the models it no longer holds (:meth:`DetectorCore.reassigned`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from mitiga_core.bus.loop import ConsumerLoop
from mitiga_core.dlq import dead_letter
from mitiga_core.errors import EventDecodeError, Unavailable
from mitiga_core.events import Topic

if TYPE_CHECKING:
    from mitiga_core.bus import Bus, Consumer, Record
    from mitiga_detector.core import DetectorCore
    from mitiga_detector.heap import Heap

log = logging.getLogger(__name__)
TOPICS = (Topic.INFERENCE, Topic.FEEDBACK, Topic.PROGRESS)


class DetectorConsumer:
    def __init__(self, bus: Bus, core: DetectorCore, group_id: str, *, heap: Heap | None = None) -> None:
        self._bus = bus
        self._core = core
        self._heap = heap
        self._loop = ConsumerLoop(bus, TOPICS, group_id, self.process, name="detector-consumer",
                                  after_batch=self._after_batch, on_assigned=self._on_assigned)

    @property
    def alive(self) -> bool:
        return self._loop.alive

    def start(self) -> None:
        self._loop.start()

    def _on_assigned(self, consumer: Consumer) -> None:
        # a model's events, feedback and progress are keyed by its name, on topics with as many partitions each,
        # so the member holding a model's inference partition holds its other records too
        self._core.reassigned(lambda model: consumer.owns(Topic.INFERENCE, model))
        if self._heap is not None:
            self._heap.reassigned()

    def _after_batch(self) -> None:
        self._core.checkpoint()
        if self._heap is not None:
            self._heap.after_batch(self._core.monitors_built)
        self._core.observe_state_memory()
        lag = self._core.metrics.lag
        for (topic, partition), value in self._loop.lag.items():
            lag.labels(topic, str(partition)).set(value)

    def process(self, record: Record) -> None:
        try:
            self._core.handle(record.envelope)
        except Unavailable:
            raise  # not the event's fault: the loop retries the batch
        except EventDecodeError as exc:
            self._dead_letter(record, "invalid", str(exc))
        except Exception as exc:  # a bug must not stall the stream or lose the event
            log.exception("event processing failed", extra={"topic": record.topic, "offset": record.offset})
            self._dead_letter(record, "error", f"{type(exc).__name__}: {exc}")

    def _dead_letter(self, record: Record, kind: str, reason: str) -> None:
        self._core.metrics.rejected.labels(kind).inc()
        dead_letter(self._bus, record, reason)

    def stop(self) -> None:
        self._loop.stop()
