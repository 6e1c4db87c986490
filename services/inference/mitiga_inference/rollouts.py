"""Follows ModelRollout events and hot-swaps to the model store's champion.

The event is a nudge; the store is the truth: on any rollout for a served model the listener loads
that model's current champion. Replayed or out-of-order events therefore change nothing.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from typing import TYPE_CHECKING

from mitiga_core.errors import EventDecodeError, MitigaError
from mitiga_core.events import Topic, decode_as
from mitiga_core.pb.mitiga.v1 import events_pb2 as pb

if TYPE_CHECKING:
    from mitiga_core.bus import Bus, Consumer
    from mitiga_core.events import Envelope
    from mitiga_core.store import ModelStore
    from mitiga_inference.repository import ModelRepository

log = logging.getLogger(__name__)


class RolloutListener:
    def __init__(self, bus: Bus, store: ModelStore, repository: ModelRepository, served: list[str]) -> None:
        self._bus = bus
        self._store = store
        self._repo = repository
        self._served = served
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # every replica must see every rollout: one consumer group per process
        self._group = f"mitiga-inference-{socket.gethostname()}-{id(self):x}"

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        consumer = self._bus.subscribe([Topic.ROLLOUT], self._group)
        self._thread = threading.Thread(target=self._run, args=(consumer, loop), name="rollouts", daemon=True)
        self._thread.start()

    def _run(self, consumer: Consumer, loop: asyncio.AbstractEventLoop) -> None:
        try:
            while not self._stop.is_set():
                for record in consumer.poll(timeout_s=0.5):
                    self._handle(record.envelope, loop)
                consumer.commit()
        finally:
            consumer.close()

    def _handle(self, envelope: Envelope, loop: asyncio.AbstractEventLoop) -> None:
        try:
            rollout = decode_as(envelope, pb.ModelRollout)
        except EventDecodeError as exc:
            log.warning("ignoring undecodable rollout", extra={"reason": str(exc)})
            return
        name = rollout.model_name
        if name not in self._served and self._repo.peek(name) is None:
            return
        champion = self._store.champion(name)
        loaded = self._repo.peek(name)
        if champion is None or (loaded is not None and loaded.version == champion):
            return
        future = asyncio.run_coroutine_threadsafe(self._repo.load(name, champion), loop)
        try:
            future.result(timeout=300)
        except MitigaError as exc:
            log.error("rollout failed", extra={"model": name, "version": champion, "reason": str(exc)})

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
