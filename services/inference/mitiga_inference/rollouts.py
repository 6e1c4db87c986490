"""Follows ModelRollout events: hot-swaps to the model store's champion, and follows its live trials.

The event is a nudge; the store is the truth: on any rollout for a served model the listener loads
that model's current champion (unless pinned), then the candidate on trial, if any (pinned or not: a trial never
changes the champion). Replayed or out-of-order events therefore change nothing.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import TYPE_CHECKING, Any

from mitiga_core.bus.loop import ConsumerLoop
from mitiga_core.dlq import dead_letter
from mitiga_core.errors import EventDecodeError, MitigaError
from mitiga_core.events import Topic, decode_as
from mitiga_core.pb.mitiga.v1 import events_pb2 as pb

if TYPE_CHECKING:
    from collections.abc import Coroutine

    from mitiga_core.bus import Bus, Record
    from mitiga_core.store import ModelStore
    from mitiga_inference.repository import ModelRepository
    from mitiga_inference.routing import TrialRouter

log = logging.getLogger(__name__)


class RolloutListener:
    def __init__(self, bus: Bus, store: ModelStore, repository: ModelRepository, served: list[str],
                 router: TrialRouter, pinned: set[str] | None = None) -> None:
        self._router = router
        self._bus = bus
        self._pinned = pinned or set()
        self._store = store
        self._repo = repository
        self._served = served
        self._loop: asyncio.AbstractEventLoop | None = None
        # every replica must see every rollout: one consumer group per process
        group = f"mitiga-inference-{socket.gethostname()}-{id(self):x}"
        self._consumer = ConsumerLoop(bus, [Topic.ROLLOUT], group, self._handle, name="rollouts")

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._consumer.start()

    def _handle(self, record: Record) -> None:
        try:
            rollout = decode_as(record.envelope, pb.ModelRollout)
        except EventDecodeError as exc:
            dead_letter(self._bus, record, str(exc))
            return
        name = rollout.model_name
        if (name not in self._served and self._repo.peek(name) is None) or self._loop is None:
            return
        champion = None if name in self._pinned else self._store.champion(name)
        loaded = self._repo.peek(name)
        if champion is not None and (loaded is None or loaded.version != champion):
            self._run(self._repo.load(name, champion, trigger="rollout"), name, champion)
        self._run(self._router.reconcile(name), name, rollout.version)

    def _run(self, work: Coroutine[Any, Any, object], name: str, version: str) -> None:
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(work, self._loop)
        try:
            future.result(timeout=300)
        except MitigaError as exc:
            log.error("rollout failed", extra={"model": name, "version": version, "reason": str(exc)})

    def stop(self) -> None:
        self._consumer.stop(5)
