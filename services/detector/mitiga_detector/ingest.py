"""Events in: decoded, deduplicated, checked against the model, and turned into rows, labels and windows.

Inference events feed their model version's monitor (a window that closes goes to :class:`~.react.Reaction`) and
are remembered for their feedback; a candidate's predictions on live trial go to the promotion policy instead.
Feedback joins its stored prediction, or waits for it in :class:`~.parking.FeedbackParking`. Redelivered events
change nothing twice: a handled event is marked as seen (a staged write, applied with the checkpoint), and within
this process the events already applied are remembered, for a batch delivered again after a state-store failure.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING

import numpy as np

from mitiga_core.errors import EventDecodeError
from mitiga_core.events import decode
from mitiga_core.labelled import LabelledLog
from mitiga_core.pb.mitiga.v1 import events_pb2 as pb
from mitiga_detector.decoding import data_time, matrix
from mitiga_detector.parking import FeedbackParking
from mitiga_detector.performance import FeedbackJoiner, Prediction

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from datetime import datetime

    from google.protobuf.message import Message

    from mitiga_core.events import Envelope
    from mitiga_core.state import StagedWrites, StateStore, Write
    from mitiga_core.types import AnyArray
    from mitiga_detector.checkpoint import Checkpoints
    from mitiga_detector.metrics import DetectorMetrics
    from mitiga_detector.monitor import ModelMonitor
    from mitiga_detector.monitors import Monitors
    from mitiga_detector.react import Reaction
    from mitiga_detector.settings import DetectorSettings


APPLIED_MAX = 100_000
"""Event ids remembered as applied in this process (a batch is far smaller)."""


class Ingest:
    def __init__(self, settings: DetectorSettings, *, state: StateStore, metrics: DetectorMetrics,
                 monitors: Monitors, checkpoints: Checkpoints, staged: StagedWrites, reaction: Reaction) -> None:
        self._settings = settings
        self._state = state
        self._metrics = metrics
        self._monitors = monitors
        self._checkpoints = checkpoints
        self._staged = staged
        self._react = reaction
        self._promotion = reaction.promotion
        self._joiner = FeedbackJoiner(state, settings.feedback_ttl_s, settings.predictions_max,
                                      settings.predictions_max_bytes)
        self._labelled = LabelledLog(state, settings.labelled_max_requests, settings.labelled_max_bytes)
        self._parking = FeedbackParking(settings.feedback_wait_s, settings.feedback_parked_max,
                                        max_bytes=settings.feedback_parked_max_bytes)
        self._parked_models: set[str] = set()
        """Models whose parked feedback was read from the checkpoint since the last reassignment."""
        self._applied: OrderedDict[str, None] = OrderedDict()
        """Events (and feedback items) whose in-memory effects this process has applied: when the state store fails
        in the middle of a batch, the batch is delivered again and these are not applied twice."""

    def handle(self, envelope: Envelope) -> Message | None:
        """Apply one bus message; None when it was handled before. Raises EventDecodeError for anything that belongs
        in the dead-letter topic."""
        message = decode(envelope)
        seen_key = f"mitiga:seen:{envelope.headers['ce_id']}"
        if self._staged.get(seen_key, self._state) is not None:
            self._metrics.duplicates.inc()
            return None
        if isinstance(message, pb.InferenceEvent | pb.InferenceEventBatch):
            self._inference(message.events if isinstance(message, pb.InferenceEventBatch) else [message])
        elif isinstance(message, pb.FeedbackEvent):
            self._restore_parked(message.model_name)
            self._feedback(message)
        elif isinstance(message, pb.RetrainProgress):
            self._react.progress(message)
        else:
            raise EventDecodeError(f"the detector does not consume {message.DESCRIPTOR.name}")
        marks = f"mitiga:seen-index:{self._settings.consumer_group}"
        self._staged.set(seen_key, b"1", ttl_s=self._settings.feedback_ttl_s, index=marks,
                         max_items=self._settings.dedupe_max)
        return message

    def _inference(self, events: Sequence[pb.InferenceEvent]) -> None:
        events = self._trial_events(events)
        for model in {event.model_name for event in events}:
            self._restore_parked(model)
        checked = [self._check(event) for event in events]  # a bad event sends the whole batch to the DLQ
        pending: list[Prediction] = []
        served: dict[int, tuple[ModelMonitor, list[pb.InferenceEvent], list[tuple[AnyArray, AnyArray, datetime]]]] = {}
        for event, (monitor, inputs, outputs) in zip(events, checked, strict=True):
            when = data_time(event)
            if event.request_id:
                pending.append(Prediction(event.model_name, event.request_id, event.model_version, inputs,
                                          outputs, when.isoformat(), event.event_id))
            if event.event_id not in self._applied:
                _, observed, rows = served.setdefault(id(monitor), (monitor, [], []))
                observed.append(event)
                rows.append((inputs, outputs, when))
        for monitor, observed, rows in served.values():  # each model version's rows at once
            self._observe(monitor, observed, rows)
        remembered = self._joiner.remember_many(pending)
        for model in remembered.refused:
            self._metrics.reused_ids.labels(model).inc()
        for model, count in remembered.evicted.items():
            self._metrics.evicted.labels(model).inc(count)
        if len(self._parking):
            self._join_parked(pending)

    def _check(self, event: pb.InferenceEvent) -> tuple[ModelMonitor, AnyArray, AnyArray]:
        monitor = self._monitors.get(event.model_name, event.model_version)
        inputs, outputs = matrix(event.inputs, "inputs"), matrix(event.outputs, "outputs")
        expected = monitor.manifest.input_width
        if inputs.shape[1] != expected or inputs.shape[0] != outputs.shape[0]:
            raise EventDecodeError(f"inputs {list(inputs.shape)} / outputs {list(outputs.shape)} do not fit "
                                   f"model {event.model_name!r} version {event.model_version}")
        return monitor, inputs, outputs

    def _trial_events(self, events: Sequence[pb.InferenceEvent]) -> list[pb.InferenceEvent]:
        """Keep the predictions of a candidate on live trial for the promotion policy (they are not the model's
        served behaviour: not monitored, not labelled); return the other events."""
        flags = [self._promotion.on_trial(e.model_name, e.model_version) for e in events]
        if not any(flags):
            return list(events)
        trial = [e for e, on in zip(events, flags, strict=True) if on]
        self._promotion.remember([
            Prediction(e.model_name, e.request_id, e.model_version, np.zeros((0, 0), np.float32),
                       matrix(e.outputs, "outputs"), data_time(e).isoformat(), e.event_id)
            for e in trial if e.request_id], self._staged)
        return [e for e, on in zip(events, flags, strict=True) if not on]

    def _applied_once(self, key: str) -> None:
        if key:
            self._applied[key] = None
            while len(self._applied) > APPLIED_MAX:
                self._applied.popitem(last=False)

    def _observe(self, monitor: ModelMonitor, events: list[pb.InferenceEvent],
                 rows: list[tuple[AnyArray, AnyArray, datetime]]) -> None:
        windows, alarms = monitor.observe(rows)
        for event in events:  # counted in the windows: a redelivery must not count them again
            self._applied_once(event.event_id)
        model = monitor.manifest.name
        if alarms["online"]:
            self._metrics.online_alarms.labels(model).inc(alarms["online"])
        if alarms["sequential"]:
            self._metrics.sequential_alarms.labels(model).inc(alarms["sequential"])
        for window in windows:
            self._react.window(monitor, window)

    def _feedback(self, event: pb.FeedbackEvent) -> None:
        for i, item in enumerate(event.items):
            key = f"{event.event_id}:{i}" if event.event_id else ""
            if key in self._applied:
                continue  # joined before the state store failed later in this batch
            if not self._join(event.model_name, item.request_id, list(item.ground_truth), event.source):
                for model in self._parking.park(event.model_name, item.request_id, list(item.ground_truth),
                                                event.source):
                    self._metrics.unmatched.labels(model, "no_prediction").inc()
            self._applied_once(key)

    def _join_parked(self, predictions: list[Prediction]) -> None:
        """Join the parked feedback of the predictions just remembered."""
        for p in predictions:
            claimed = self._parking.claim(p.model, p.request_id)
            if claimed is not None:
                self._join(p.model, p.request_id, *claimed)

    def _join(self, model: str, request_id: str, ground_truth: list[float], source: str) -> bool:
        """Join ground truth (from the label ``source``) to its stored prediction; False when the prediction is not
        (yet) there."""
        stored = self._joiner.take(model, request_id, self._staged)
        if stored is None:
            return False
        monitor = self._monitors.get(model, stored.version)
        truth = np.asarray(ground_truth, np.float32)
        width = monitor.manifest.kind.truth_width(monitor.manifest)  # a value per output, or a class per row
        if truth.size != len(stored.outputs) * width:
            self._metrics.unmatched.labels(model, "size_mismatch").inc()
            return True
        truth = truth.reshape(len(stored.outputs), width)
        monitor.label(stored.inputs, stored.outputs, truth)
        self._staged.add(self._labelled.write(model, stored.inputs, truth, stored.when, request_id, source))
        self._metrics.joined.labels(model).inc()
        self._promotion.pair(model, request_id, stored.version, stored.outputs, truth, self._staged)
        return True

    # --- parked feedback in the checkpoint ---
    def _restore_parked(self, model: str) -> None:
        if model not in self._parked_models:
            items, migrated = self._checkpoints.read_parked(model)
            self._parking.restore(model, items, changed=migrated)
            self._parked_models.add(model)

    def parked_writes(self) -> list[Write]:
        """The checkpoint writes of the parked feedback that changed; feedback whose wait is over is counted."""
        for model in self._parking.expire():
            self._metrics.unmatched.labels(model, "no_prediction").inc()
        writes = [self._checkpoints.parked_write(model, self._parking.snapshot(model))
                  for model in self._parking.changed()]
        self._metrics.parked.set(len(self._parking))
        return writes

    def reset(self, owns: Callable[[str], bool]) -> None:
        """Back to the checkpoint: forget what was applied and parked; the owned models' parked feedback is read
        again now, so that it waits (and expires) without another event."""
        parked = [name for name in self._parked_models if owns(name)]
        self._parking.clear()
        self._parked_models.clear()
        self._applied.clear()
        for name in parked:
            self._restore_parked(name)
