"""The detector's core: events in, windows judged, reactions out, all checkpointed together.

It wires four parts, with data flowing one way: :class:`~.ingest.Ingest` (decode, dedupe, join and park feedback)
feeds the monitors (:class:`~.monitors.Monitors`), a closed window goes to :class:`~.react.Reaction` (signals, the
judge's typed report, metrics, alerts, drift events, trigger, promotion), and the window records land in the read
model (:class:`~.view.DetectorView`) that the API and the reports read. Transports (the bus consumer, the HTTP app)
are thin adapters around this class; only it takes the lock.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import TYPE_CHECKING, Any

from mitiga_core.pb.mitiga.v1 import events_pb2 as pb
from mitiga_core.state import StagedWrites
from mitiga_detector.checkpoint import Checkpoints
from mitiga_detector.ingest import Ingest
from mitiga_detector.monitors import Monitors
from mitiga_detector.react import Reaction
from mitiga_detector.view import DetectorView

if TYPE_CHECKING:
    from collections import deque
    from collections.abc import Callable

    from mitiga_core.events import Envelope
    from mitiga_core.jobs import JobLauncher, JobState
    from mitiga_core.publisher import EventPublisher
    from mitiga_core.state import StateStore
    from mitiga_core.store import ModelStore
    from mitiga_detector.alerting import Alerting
    from mitiga_detector.approval import Approvals
    from mitiga_detector.breaker import RetrainBreaker
    from mitiga_detector.metrics import DetectorMetrics
    from mitiga_detector.monitor import ModelMonitor
    from mitiga_detector.settings import DetectorSettings

log = logging.getLogger(__name__)


class DetectorCore:
    def __init__(self, settings: DetectorSettings, *, store: ModelStore, state: StateStore,
                 publisher: EventPublisher, metrics: DetectorMetrics, launcher: JobLauncher | None) -> None:
        self.settings = settings
        self._state = state
        self.metrics = metrics
        self.lock = threading.Lock()  # the HTTP app reads what the consumer thread writes, through the view
        self.view = DetectorView(self.lock, settings.history)
        self._checkpoints = Checkpoints(state, settings.consumer_group)
        self._staged = StagedWrites()
        """Side effects of the events handled since the last checkpoint, applied together with it."""
        self._monitors = Monitors(settings, store=store, checkpoints=self._checkpoints, metrics=metrics)
        self._react = Reaction(settings, store=store, state=state, publisher=publisher, metrics=metrics,
                               launcher=launcher, checkpoints=self._checkpoints, staged=self._staged, view=self.view)
        self._ingest = Ingest(settings, state=state, metrics=metrics, monitors=self._monitors,
                              checkpoints=self._checkpoints, staged=self._staged, reaction=self._react)
        self._memory_seen = -math.inf

    @property
    def alerting(self) -> Alerting:
        return self._react.alerting

    @property
    def approvals(self) -> Approvals:
        return self._react.approvals

    @property
    def breaker(self) -> RetrainBreaker:
        return self._react.breaker

    def handle(self, envelope: Envelope) -> None:
        """Process one bus message; raises EventDecodeError for anything that belongs in the dead-letter topic."""
        start = time.perf_counter()
        with self.lock:
            message = self._ingest.handle(envelope)
        if message is None:
            return
        if isinstance(message, pb.InferenceEventBatch):  # counted as the events it carries
            self.metrics.events.labels("InferenceEvent").inc(len(message.events))
        else:
            self.metrics.events.labels(message.DESCRIPTOR.name).inc()
        self.metrics.seconds.labels("event").observe(time.perf_counter() - start)

    def monitor(self, name: str, version: str) -> ModelMonitor:
        """The version's monitor (built on first use)."""
        with self.lock:
            return self._monitors.get(name, version)

    @property
    def monitors_built(self) -> int:
        """Monitors built since the start (a new one, or one built again after a rebalance)."""
        return self._monitors.built

    def checkpoint(self) -> None:
        """Save what changed since the last call, together with the staged side effects of the events handled since
        then, all or none (the consumer calls this before committing offsets). When the state store is unavailable
        this raises and keeps everything for the next call."""
        with self.lock:
            writes = self._monitors.writes()
            writes += [self._checkpoints.episode_write(name, version, tracker)
                       for name, version, tracker in self._react.judge.trackers()]
            writes += self._ingest.parked_writes()
            self._staged.apply(self._state, *writes)
            self._monitors.saved()
            self._react.judge.saved()

    def reassigned(self, owns: Callable[[str], bool]) -> None:
        """The consumer's partitions changed, or it joined the group again: records come from the committed offsets
        (or after this member's own committed batches), so go back to the checkpoint: drop the staged writes and
        reread each model's stream state. A model this member no longer ``owns`` leaves its memory, the API's
        history and this replica's gauges (its new owner exports them)."""
        with self.lock:
            known = self._monitors.names() | set(self.view.history)
            self._staged.clear()
            self._react.judge.clear()
            self._ingest.reset(owns)
            self._monitors.reset(owns)
            released = sorted(name for name in known if not owns(name))
            for name in released:
                self.view.forget(name)
                self._react.forget(name)
        log.info("partitions reassigned: state back to the checkpoint", extra={"released": released})

    def observe_state_memory(self, every_s: float = 10.0) -> None:
        """Export the state store's memory and limit (at most every ``every_s``), for the alert before it fills."""
        now = time.monotonic()
        if now - self._memory_seen < every_s:
            return
        self._memory_seen = now
        found = self._state.memory()
        if found is not None:
            self.metrics.state_used.set(found[0])
            self.metrics.state_max.set(found[1])

    def job_finished(self, labels: dict[str, str], name: str, state: JobState) -> None:
        """Called by the job launcher (from its own thread) for every retraining job that ends."""
        self._react.job_finished(labels, name, state)

    def manual_retrain(self, name: str, version: str, options: dict[str, str]) -> tuple[str, str]:
        return self._react.manual_retrain(name, version, options)

    # --- state for the API ---
    @property
    def history(self) -> dict[str, deque[dict[str, Any]]]:
        """Each model's recent window records (the read model's; read them with ``view.windows``)."""
        return self.view.history

    def state_of(self, name: str) -> dict[str, Any]:
        with self.lock:
            level, episode_id = self._react.judge.episode(name)
            history = list(self.view.history.get(name, []))
        return {"model": name, "level": level.name.lower(), "episode_id": episode_id,
                "last_window": history[-1] if history else None, "windows": len(history)}
