"""What the detector does with a closed window: signals computed, the judge's report, and the reaction to it.

The reaction is the gauges and alerts, the window's record in the read model, the drift event, the retrain trigger
(unless a challenger is on live trial or awaits approval), the scheduled retrain, and the promotion decisions that
the window's clock moves on. Events reach it from :mod:`mitiga_detector.ingest`; nothing here reads the bus.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from mitiga_core.events import Topic
from mitiga_core.jobs import JobState
from mitiga_core.progress import RetrainStatus, lock_key
from mitiga_detector import signals
from mitiga_detector.alerting import Alerting
from mitiga_detector.approval import Approvals
from mitiga_detector.drift_events import TYPE_CODES, drift_event
from mitiga_detector.judge import Judge
from mitiga_detector.levels import Severity
from mitiga_detector.promotion import PromotionJudge
from mitiga_detector.trigger import RetrainTrigger

if TYPE_CHECKING:
    from datetime import datetime

    from mitiga_core.jobs import JobLauncher
    from mitiga_core.pb.mitiga.v1 import events_pb2 as pb
    from mitiga_core.publisher import EventPublisher
    from mitiga_core.state import StagedWrites, StateStore
    from mitiga_core.store import ModelStore
    from mitiga_detector.breaker import RetrainBreaker
    from mitiga_detector.checkpoint import Checkpoints
    from mitiga_detector.metrics import DetectorMetrics
    from mitiga_detector.monitor import ModelMonitor
    from mitiga_detector.settings import DetectorSettings
    from mitiga_detector.view import DetectorView
    from mitiga_detector.windows import Window


class Reaction:
    def __init__(self, settings: DetectorSettings, *, store: ModelStore, state: StateStore,
                 publisher: EventPublisher, metrics: DetectorMetrics, launcher: JobLauncher | None,
                 checkpoints: Checkpoints, staged: StagedWrites, view: DetectorView) -> None:
        self._settings = settings
        self._state = state
        self._publisher = publisher
        self._metrics = metrics
        self._staged = staged
        self._view = view
        self.trigger = RetrainTrigger(settings, state, launcher, publisher)
        self.promotion = PromotionJudge(settings, store=store, state=state, publisher=publisher, metrics=metrics,
                                        trigger=self.trigger)
        self.alerting = Alerting(metrics, settings.runbook_base)
        self.approvals = Approvals(settings, store=store, trigger=self.trigger, publisher=publisher, metrics=metrics)
        self.judge = Judge(settings, checkpoints)

    @property
    def breaker(self) -> RetrainBreaker:
        return self.trigger.breaker

    def window(self, monitor: ModelMonitor, window: Window) -> None:
        """A window closed: its signals, the report on them, and what follows."""
        start = time.perf_counter()
        m, name, version = self._metrics, monitor.manifest.name, monitor.manifest.version
        labels = (name, version)
        found = signals.compute(monitor, window, self._settings, m)
        values = {**found.values, **self._performance(monitor, labels)}
        concept_alarm, monitor.performance.concept_alarm = monitor.performance.concept_alarm, False
        if concept_alarm:
            m.concept_alarms.labels(name).inc()
        if self._settings.concept_detector != "none" and len(monitor.performance):
            values["concept"] = float(concept_alarm)
        for metric, value in values.items():
            m.metric.labels(*labels, metric).set(value)
        shown = {metric: monitor.levels_to_show.pop(metric) for metric in values if metric in monitor.levels_to_show}
        if shown:
            m.show_levels(name, shown)
        self.promotion.expire(name, self._staged)
        waiting = self.approvals.check(name)
        self.alerting.set_awaiting(name, waiting.version if waiting else None)
        self._decide(monitor, window, values, found, waiting is not None)
        self._view.last_window[name] = (monitor, window)
        self._blind(name, version, window.end)
        m.seconds.labels("window").observe(time.perf_counter() - start)

    def _performance(self, monitor: ModelMonitor, labels: tuple[str, str]) -> dict[str, float]:
        """The realised error signals: absolute (in ``metric_units``) and relative to the validation error."""
        perf = monitor.performance
        self._metrics.perf_rows.labels(*labels).set(len(perf))
        by_units = perf.metrics(monitor.manifest)
        for units, values in by_units.items():
            for metric, value in values.items():
                self._metrics.perf.labels(*labels, metric, units).set(value)
        gap = perf.estimate_error(monitor.manifest.kind)
        if gap is not None:
            self._metrics.estimate_error.labels(*labels, monitor.manifest.kind.estimated_metric).set(gap)
        if len(perf) < self._settings.min_performance_rows:
            return {}
        monitor.in_units = dict(by_units.get("original", {}))
        return {**by_units.get(self._settings.metric_units, {}),
                **signals.performance_signals(monitor, perf.skill(), self._settings.ratio_confidence)}

    def _blind(self, name: str, version: str, when: datetime) -> None:
        outcome = self.trigger.scheduled(name, version, when)
        if outcome is not None:
            self._metrics.triggers.labels(name, f"blind_{outcome}").inc()

    def _decide(self, monitor: ModelMonitor, window: Window, values: dict[str, float],
                found: signals.WindowSignals, awaiting_approval: bool) -> None:
        """React to the judge's report: gauges and alerts, the window's record, the drift event, the trigger."""
        name, version = monitor.manifest.name, monitor.manifest.version
        report = self.judge.judge(monitor, window, values)
        level, result = report.level, report.verdict
        for type_name in TYPE_CODES:
            active = level >= Severity.WARNING and type_name in result.types
            self._metrics.level.labels(name, type_name).set(int(level) - 1 if active else 0)
        reasons = self.alerting.judged(name, version, level, result, report.confirmed, values, report.levels,
                                       self._state.get(lock_key(name)) is not None, self.breaker.paused(name))
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
        self._view.add(name, record)
        if report.opened:
            self._metrics.episodes.labels(name, level.name.lower()).inc()
        if report.changed:
            event = drift_event(monitor, window, level, result, values, found, report.episode_id, reasons)
            self._publisher.offer(Topic.DRIFT, name, lambda: event)
        if report.asks_retrain and report.episode_id:
            # a challenger on live trial, or one awaiting approval, is the mitigation under way: no other meanwhile
            outcome = "trial" if self.promotion.candidate(name) is not None else "awaiting_approval" \
                if awaiting_approval else self.trigger.fire(
                name, version, report.episode_id, report.pressure(self._settings.trigger_policy),
                monitor.performance.total, window.end.timestamp())
            self._metrics.triggers.labels(name, outcome).inc()
            record["trigger"] = outcome

    def progress(self, message: pb.RetrainProgress) -> None:
        """A retrain reported its progress: a finished one counts for the model's circuit breaker."""
        if (status := RetrainStatus.of(message.status)) is not None and status.finished:
            self._metrics.retrain_outcomes.labels(message.model_name, message.status).inc()
            self.breaker.finished(message.model_name, message.request_id, status)

    def job_finished(self, labels: dict[str, str], name: str, state: JobState) -> None:
        """Called by the job launcher for every retraining job that ends."""
        model = labels.get("mitiga.io/model", "")
        self._metrics.jobs.labels(model, str(state)).inc()
        self.trigger.job_finished(model, name, state == JobState.SUCCEEDED)

    def manual_retrain(self, name: str, version: str, options: dict[str, str]) -> tuple[str, str]:
        outcome, request_id = self.trigger.manual(name, version, options)
        self._metrics.triggers.labels(name, f"manual_{outcome}").inc()
        return outcome, request_id

    def forget(self, name: str) -> None:
        """The model moved to another replica: its alert state and gauges are exported there."""
        self.alerting.forget(name)
        self._metrics.forget_model(name)
