"""The detector's core: events in, windows tested, levels decided, drift events and retrain requests out.

Transports (the bus consumer, the HTTP app) are thin adapters around :class:`DetectorCore`.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict, deque
from typing import TYPE_CHECKING, Any

import numpy as np

from mitiga_core.errors import EventDecodeError, MitigaError
from mitiga_core.events import Topic, decode
from mitiga_core.jobs import JobState
from mitiga_core.labelled import LabelledLog
from mitiga_core.pb.mitiga.v1 import events_pb2 as pb
from mitiga_core.progress import RetrainStatus, lock_key
from mitiga_core.state import StagedWrites
from mitiga_detector import signals
from mitiga_detector.alerting import Alerting
from mitiga_detector.approval import Approvals
from mitiga_detector.checkpoint import Checkpoints
from mitiga_detector.decoding import data_time, matrix
from mitiga_detector.drift_events import TYPE_CODES, drift_event
from mitiga_detector.judge import Judge
from mitiga_detector.levels import Severity
from mitiga_detector.monitor import ModelMonitor, build_monitor
from mitiga_detector.parking import FeedbackParking
from mitiga_detector.performance import FeedbackJoiner, Prediction
from mitiga_detector.promotion import PromotionJudge
from mitiga_detector.trigger import RetrainTrigger
from mitiga_detector.view import DetectorView

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from datetime import datetime

    from mitiga_core.events import Envelope
    from mitiga_core.jobs import JobLauncher
    from mitiga_core.publisher import EventPublisher
    from mitiga_core.state import StateStore
    from mitiga_core.store import ModelStore
    from mitiga_core.types import AnyArray
    from mitiga_detector.breaker import RetrainBreaker
    from mitiga_detector.metrics import DetectorMetrics
    from mitiga_detector.settings import DetectorSettings
    from mitiga_detector.windows import Window

log = logging.getLogger(__name__)


APPLIED_MAX = 100_000
"""Event ids remembered as applied in this process (a batch is far smaller)."""


class DetectorCore:
    def __init__(self, settings: DetectorSettings, *, store: ModelStore, state: StateStore,
                 publisher: EventPublisher, metrics: DetectorMetrics, launcher: JobLauncher | None) -> None:
        self.settings = settings
        self._store = store
        self._state = state
        self._publisher = publisher
        self.metrics = metrics
        self._joiner = FeedbackJoiner(state, settings.feedback_ttl_s)
        self._labelled = LabelledLog(state, settings.labelled_max_requests, settings.labelled_max_bytes)
        self._trigger = RetrainTrigger(settings, state, launcher, publisher)
        self._promotion = PromotionJudge(settings, store=store, state=state, publisher=publisher, metrics=metrics,
                                         trigger=self._trigger)
        self._checkpoints = Checkpoints(state, settings.consumer_group)
        self.alerting = Alerting(metrics, settings.runbook_base)
        self.approvals = Approvals(settings, store=store, trigger=self._trigger, publisher=publisher, metrics=metrics)
        self._staged = StagedWrites()
        """Side effects of the events handled since the last checkpoint, applied together with it."""
        self._parking = FeedbackParking(settings.feedback_wait_s, settings.feedback_parked_max,
                                        max_bytes=settings.feedback_parked_max_bytes)
        self._parked_models: set[str] = set()
        """Models whose parked feedback was read from the checkpoint since the last reassignment."""
        self._dirty: set[tuple[str, str]] = set()
        """Model versions whose monitor changed since the last checkpoint."""
        self._monitors: dict[tuple[str, str], ModelMonitor] = {}
        self._judge = Judge(settings, self._checkpoints)
        self._memory_seen = -math.inf
        self._applied: OrderedDict[str, None] = OrderedDict()
        """Events (and feedback items) whose in-memory effects this process has applied: when the state store fails
        in the middle of a batch, the batch is delivered again and these are not applied twice."""
        self.lock = threading.Lock()  # the HTTP app reads what the consumer thread writes, through the view
        self.view = DetectorView(self.lock, settings.history)

    # --- events in ---
    def handle(self, envelope: Envelope) -> None:
        """Process one bus message; raises EventDecodeError for anything that belongs in the dead-letter topic."""
        message = decode(envelope)
        seen_key = f"mitiga:seen:{envelope.headers['ce_id']}"
        if self._staged.get(seen_key, self._state) is not None:
            self.metrics.duplicates.inc()
            return
        start = time.perf_counter()
        with self.lock:
            if isinstance(message, pb.InferenceEvent | pb.InferenceEventBatch):
                events = message.events if isinstance(message, pb.InferenceEventBatch) else [message]
                events = self._trial_events(events)
                for model in {event.model_name for event in events}:
                    self._restore_parked(model)
                checked = [self._check(event) for event in events]  # a bad event sends the whole batch to the DLQ
                pending: list[Prediction] = []
                for event, (monitor, inputs, outputs) in zip(events, checked, strict=True):
                    if event.request_id:
                        pending.append(Prediction(event.model_name, event.request_id, event.model_version, inputs,
                                                  outputs, data_time(event).isoformat(), event.event_id))
                    if event.event_id not in self._applied:
                        self._on_inference(event, monitor, inputs, outputs)
                for model in self._joiner.remember_many(pending):
                    self.metrics.reused_ids.labels(model).inc()
                if len(self._parking):
                    self._join_parked(pending)
            elif isinstance(message, pb.FeedbackEvent):
                self._restore_parked(message.model_name)
                self._on_feedback(message)
            elif isinstance(message, pb.RetrainProgress):
                if (status := RetrainStatus.of(message.status)) is not None and status.finished:
                    self.metrics.retrain_outcomes.labels(message.model_name, message.status).inc()
                    self._trigger.breaker.finished(message.model_name, message.request_id, status)
            else:
                raise EventDecodeError(f"the detector does not consume {message.DESCRIPTOR.name}")
            self._staged.set(seen_key, b"1", ttl_s=self.settings.feedback_ttl_s)
        if isinstance(message, pb.InferenceEventBatch):  # counted as the events it carries
            self.metrics.events.labels("InferenceEvent").inc(len(message.events))
        else:
            self.metrics.events.labels(message.DESCRIPTOR.name).inc()
        self.metrics.seconds.labels("event").observe(time.perf_counter() - start)

    def monitor(self, name: str, version: str) -> ModelMonitor:
        key = (name, version)
        if key not in self._monitors:
            try:
                monitor = build_monitor(self._store, name, version, self.settings)
            except MitigaError as exc:
                raise EventDecodeError(f"unknown model: {exc}") from exc
            except ValueError as exc:  # an invalid model name, or unreadable reference arrays
                raise EventDecodeError(f"model {name!r} version {version!r} cannot be monitored: {exc}") from exc
            self._checkpoints.restore_monitor(monitor)
            self.metrics.show_levels(name, monitor.levels(self.settings.thresholds,
                                                          self.settings.model_thresholds.get(name)))
            self._monitors[key] = monitor
        self._dirty.add(key)
        return self._monitors[key]

    def checkpoint(self) -> None:
        """Save what changed since the last call, together with the staged side effects of the events handled since
        then, all or none (the consumer calls this before committing offsets). When the state store is unavailable
        this raises and keeps everything for the next call."""
        with self.lock:
            writes = [self._checkpoints.monitor_write(self._monitors[key]) for key in sorted(self._dirty)]
            writes += [self._checkpoints.episode_write(name, version, tracker)
                       for name, version, tracker in self._judge.trackers()]
            for model in self._parking.expire():
                self.metrics.unmatched.labels(model, "no_prediction").inc()
            writes += [self._checkpoints.parked_write(model, self._parking.snapshot(model))
                       for model in self._parking.changed()]
            self.metrics.parked.set(len(self._parking))
            self._staged.apply(self._state, *writes)
            self._dirty.clear()

    def reassigned(self, owns: Callable[[str], bool]) -> None:
        """The consumer's partitions changed, or it joined the group again: records come from the committed offsets
        (or after this member's own committed batches), so go back to the checkpoint: drop the staged writes and
        reread each model's stream state. A model this member no longer ``owns`` leaves its memory, the API's
        history and this replica's gauges (its new owner exports them)."""
        with self.lock:
            known = {name for name, _ in self._monitors} | set(self.view.history)
            parked = [name for name in self._parked_models if owns(name)]
            kept = {key: monitor for key, monitor in self._monitors.items() if owns(key[0])}
            self._monitors.clear()
            self._judge.clear()
            self._dirty.clear()
            self._parking.clear()
            self._parked_models.clear()
            self._applied.clear()
            self._staged = StagedWrites()
            for name in parked:  # read again now, so that they wait (and expire) without another event
                self._restore_parked(name)
            for key, monitor in kept.items():  # what was fitted on the bundle stays; the stream state is reread
                monitor.restart(self.settings)
                self._checkpoints.restore_monitor(monitor)
                self._monitors[key] = monitor
            released = sorted(name for name in known if not owns(name))
            for name in released:
                self.view.forget(name)
                self.alerting.forget(name)
                self.metrics.forget_model(name)
        log.info("partitions reassigned: state back to the checkpoint", extra={"released": released})

    def _restore_parked(self, model: str) -> None:
        if model not in self._parked_models:
            items, migrated = self._checkpoints.read_parked(model)
            self._parking.restore(model, items, changed=migrated)
            self._parked_models.add(model)

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

    def _check(self, event: pb.InferenceEvent) -> tuple[ModelMonitor, AnyArray, AnyArray]:
        monitor = self.monitor(event.model_name, event.model_version)
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

    def _on_inference(self, event: pb.InferenceEvent, monitor: ModelMonitor, inputs: AnyArray,
                      outputs: AnyArray) -> None:
        window, alarmed = monitor.observe(inputs, outputs, data_time(event))
        self._applied_once(event.event_id)  # counted in the window: a redelivery must not count it again
        if "online" in alarmed:
            self.metrics.online_alarms.labels(event.model_name).inc()
        if "sequential" in alarmed:
            self.metrics.sequential_alarms.labels(event.model_name).inc()
        if window is not None:
            self._evaluate(monitor, window)

    def _on_feedback(self, event: pb.FeedbackEvent) -> None:
        for i, item in enumerate(event.items):
            key = f"{event.event_id}:{i}" if event.event_id else ""
            if key in self._applied:
                continue  # joined before the state store failed later in this batch
            if not self._join(event.model_name, item.request_id, list(item.ground_truth)):
                for model in self._parking.park(event.model_name, item.request_id, list(item.ground_truth)):
                    self.metrics.unmatched.labels(model, "no_prediction").inc()
            self._applied_once(key)

    def _join_parked(self, predictions: list[Prediction]) -> None:
        """Join the parked feedback of the predictions just remembered."""
        for p in predictions:
            truth = self._parking.claim(p.model, p.request_id)
            if truth is not None:
                self._join(p.model, p.request_id, truth)

    def _join(self, model: str, request_id: str, ground_truth: list[float]) -> bool:
        """Join ground truth to its stored prediction; False when the prediction is not (yet) there."""
        stored = self._joiner.take(model, request_id, self._staged)
        if stored is None:
            return False
        monitor = self.monitor(model, stored.version)
        truth = np.asarray(ground_truth, np.float32)
        width = monitor.manifest.kind.truth_width(monitor.manifest)  # a value per output, or a class per row
        if truth.size != len(stored.outputs) * width:
            self.metrics.unmatched.labels(model, "size_mismatch").inc()
            return True
        truth = truth.reshape(len(stored.outputs), width)
        monitor.label(stored.inputs, stored.outputs, truth)
        self._staged.add(self._labelled.write(model, stored.inputs, truth, stored.when, request_id))
        self.metrics.joined.labels(model).inc()
        self._promotion.pair(model, request_id, stored.version, stored.outputs, truth, self._staged)
        return True

    # --- decisions ---
    def _performance(self, monitor: ModelMonitor, labels: tuple[str, str]) -> dict[str, float]:
        """The realised error signals: absolute (in ``metric_units``) and relative to the validation error."""
        perf = monitor.performance
        self.metrics.perf_rows.labels(*labels).set(len(perf))
        by_units = perf.metrics(monitor.manifest)
        for units, values in by_units.items():
            for metric, value in values.items():
                self.metrics.perf.labels(*labels, metric, units).set(value)
        gap = perf.estimate_error(monitor.manifest.kind)
        if gap is not None:
            self.metrics.estimate_error.labels(*labels, monitor.manifest.kind.estimated_metric).set(gap)
        if len(perf) < self.settings.min_performance_rows:
            return {}
        monitor.in_units = dict(by_units.get("original", {}))
        return {**by_units.get(self.settings.metric_units, {}),
                **signals.performance_signals(monitor, by_units.get("original", {}), perf.skill())}

    def _evaluate(self, monitor: ModelMonitor, window: Window) -> None:
        start = time.perf_counter()
        m, name, version = self.metrics, monitor.manifest.name, monitor.manifest.version
        labels = (name, version)
        found = signals.compute(monitor, window, self.settings, m)
        values = {**found.values, **self._performance(monitor, labels)}
        concept_alarm, monitor.performance.concept_alarm = monitor.performance.concept_alarm, False
        if concept_alarm:
            m.concept_alarms.labels(name).inc()
        if self.settings.concept_detector != "none" and len(monitor.performance):
            values["concept"] = float(concept_alarm)
        for metric, value in values.items():
            m.metric.labels(*labels, metric).set(value)
        self._promotion.expire(name, self._staged)
        waiting = self.approvals.check(name)
        self.alerting.set_awaiting(name, waiting.version if waiting else None)
        self._decide(monitor, window, values, found, waiting is not None)
        self.view.last_window[name] = (monitor, window)
        self._blind(name, version, window.end)
        m.seconds.labels("window").observe(time.perf_counter() - start)

    def _blind(self, name: str, version: str, when: datetime) -> None:
        outcome = self._trigger.scheduled(name, version, when)
        if outcome is not None:
            self.metrics.triggers.labels(name, f"blind_{outcome}").inc()

    def _decide(self, monitor: ModelMonitor, window: Window, values: dict[str, float],
                found: signals.WindowSignals, awaiting_approval: bool) -> None:
        """React to the judge's report: gauges and alerts, the window's record, the drift event, the trigger."""
        name, version = monitor.manifest.name, monitor.manifest.version
        report = self._judge.judge(monitor, window, values)
        level, result = report.level, report.verdict
        for type_name in TYPE_CODES:
            active = level >= Severity.WARNING and type_name in result.types
            self.metrics.level.labels(name, type_name).set(int(level) - 1 if active else 0)
        reasons = self.alerting.judged(name, version, level, result, report.confirmed, values, report.levels,
                                        self._state.get(lock_key(name)) is not None,
                                        self._trigger.breaker.paused(name))
        uni, dist = found.univariate, found.distances
        record: dict[str, Any] = {
            "window_start": window.start.isoformat(), "window_end": window.end.isoformat(), "rows": len(window),
            "version": version, "observed": result.level.name.lower(), "level": level.name.lower(),
            "episode_id": report.episode_id, "types": result.types,
            "signals": {s: v.name.lower() for s, v in result.signals.items()}, "decided_by": result.decided_by,
            "deciding": [r.as_dict() for r in reasons],
            "p_values": dict(zip(monitor.feature_names, uni.p_values.tolist(), strict=True)),
            "psi": dict(zip(monitor.feature_names, dist["psi"].tolist(), strict=True)),
            "units": monitor.manifest.units, "in_units": monitor.in_units, **values}
        confusion = monitor.performance.confusion(monitor.manifest)
        if confusion is not None:
            record |= {"confusion": confusion, "classes": monitor.manifest.classes}
        self.view.add(name, record)
        if report.opened:
            self.metrics.episodes.labels(name, level.name.lower()).inc()
        if report.changed:
            event = drift_event(monitor, window, level, result, values, found, report.episode_id, reasons)
            self._publisher.offer(Topic.DRIFT, name, lambda: event)
        if report.asks_retrain and report.episode_id:
            # a challenger on live trial, or one awaiting approval, is the mitigation under way: no other meanwhile
            outcome = "trial" if self._promotion.candidate(name) is not None else "awaiting_approval" \
                if awaiting_approval else self._trigger.fire(
                name, version, report.episode_id, report.pressure(self.settings.trigger_policy),
                monitor.performance.total, window.end.timestamp())
            self.metrics.triggers.labels(name, outcome).inc()
            record["trigger"] = outcome

    def job_finished(self, labels: dict[str, str], name: str, state: JobState) -> None:
        """Called by the job launcher for every retraining job that ends."""
        model = labels.get("mitiga.io/model", "")
        self.metrics.jobs.labels(model, str(state)).inc()
        self._trigger.job_finished(model, name, state == JobState.SUCCEEDED)

    @property
    def breaker(self) -> RetrainBreaker:
        return self._trigger.breaker

    def manual_retrain(self, name: str, version: str, options: dict[str, str]) -> tuple[str, str]:
        outcome, request_id = self._trigger.manual(name, version, options)
        self.metrics.triggers.labels(name, f"manual_{outcome}").inc()
        return outcome, request_id

    # --- state for the API ---
    @property
    def history(self) -> dict[str, deque[dict[str, Any]]]:
        """Each model's recent window records (the read model's; read them with ``view.windows``)."""
        return self.view.history

    def state_of(self, name: str) -> dict[str, Any]:
        with self.lock:
            level, episode_id = self._judge.episode(name)
            history = list(self.view.history.get(name, []))
        return {"model": name, "level": level.name.lower(), "episode_id": episode_id,
                "last_window": history[-1] if history else None, "windows": len(history)}
