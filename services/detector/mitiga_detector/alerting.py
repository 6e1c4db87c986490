"""What each judged window means for alerts: the gauges the alert rules read, and the detector's own list of active
alerts (``GET /v1/alerts``) for a deployment without Alertmanager (``make demo``, ``mitiga up``).

The rules and this list say the same thing (:mod:`mitiga_core.alert_catalog`): one page, ``MitigaModelCritical``,
while the model's verdict is critical under the trigger policy, naming the signals that decided it with their values
and thresholds; a warning per signal that counts under the policy (those in ``level_metrics``) and has held its
warning level, silenced while the model's page is active.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mitiga_core.alert_catalog import (
    AWAITING_APPROVAL,
    PAGE,
    RETRAIN_PAUSED,
    RETRAIN_RUNNING,
    SIGNALS,
    page_summary,
    runbook_url,
    signal_alert,
    signal_summary,
)
from mitiga_detector.levels import METRIC_DRIFT_TYPE, Severity

if TYPE_CHECKING:
    from collections.abc import Mapping

    from mitiga_detector.levels import Verdict
    from mitiga_detector.metrics import DetectorMetrics
    from mitiga_detector.settings import Level


@dataclass(frozen=True)
class Reading:
    """One signal at one level: its value and the threshold it passed."""

    signal: str
    value: float
    threshold: float
    direction: str

    def describe(self) -> str:
        side = ">=" if self.direction == "above" else "<"
        return f"{self.signal} = {self.value:.4g} ({side} {self.threshold:.4g})"

    def as_dict(self) -> dict[str, Any]:
        return {"signal": self.signal, "value": self.value, "threshold": self.threshold, "direction": self.direction}


def readings(names: Any, values: Mapping[str, float], levels: Mapping[str, Level], severity: str) -> list[Reading]:
    return [Reading(n, float(values[n]), getattr(levels[n], severity), levels[n].direction)
            for n in names if n in values and n in levels]


@dataclass
class _ModelAlerts:
    version: str
    level: Severity = Severity.NONE
    since: datetime | None = None
    deciding: list[Reading] = field(default_factory=list)
    warnings: dict[str, tuple[Reading, datetime]] = field(default_factory=dict)
    retraining: bool = False
    paused: dict[str, Any] | None = None
    awaiting: str | None = None
    shown: set[tuple[str, ...]] = field(default_factory=set)
    """The label sets of the deciding gauge set for this model (replaced window by window, without reading every
    model's series)."""


class Alerting:
    """Keeps each model's alert state from its judged windows and exports the gauges the rules read."""

    def __init__(self, metrics: DetectorMetrics, runbook_base: str) -> None:
        self._metrics = metrics
        self._runbook = runbook_base
        self._models: dict[str, _ModelAlerts] = {}
        self._lock = threading.Lock()

    def judged(self, name: str, version: str, level: Severity, result: Verdict, confirmed: Mapping[str, Severity],
               values: Mapping[str, float], levels: Mapping[str, Level], retraining: bool,
               paused: dict[str, Any] | None = None) -> list[Reading]:
        """Record one window: ``level`` is the episode's, ``result`` the window's verdict, ``confirmed`` each
        counted signal's confirmed level, ``paused`` why automatic retraining is paused (None: it is not). Returns
        the readings that decide the model's current level."""
        m, now = self._metrics, datetime.now(UTC)
        for signal, severity in confirmed.items():
            m.signal.labels(name, signal).set(int(severity) - 1)
        with self._lock:
            state = self._models.get(name)
            if state is None or state.version != version:
                if state is not None:
                    self._clear_gauges(name, state)
                # what is set between windows (a pause, a version awaiting approval) is the model's, not the version's
                state = self._models[name] = _ModelAlerts(version, awaiting=state.awaiting if state else None)
            if level != state.level:
                state.since = now if level > Severity.NONE else None
            if level == Severity.NONE:
                state.deciding = []
            elif result.level == level:  # the window itself says why the episode is where it is
                state.deciding = readings(result.deciding, values, levels, level.name.lower())
            state.level, state.retraining, state.paused = level, retraining, paused
            warned = readings([s for s, v in confirmed.items() if v >= Severity.WARNING], values, levels, "warning")
            state.warnings = {r.signal: (r, state.warnings.get(r.signal, (r, now))[1]) for r in warned}
            m.model_level.labels(name, version).set(int(level) - 1)
            m.retrain_running.labels(name).set(int(retraining))
            m.retrain_paused.labels(name).set(int(paused is not None))
            shown = {(name, r.signal, level.name.lower(), f"{r.threshold:g}", r.direction): r.value
                     for r in state.deciding}
            for labels in state.shown - shown.keys():
                with contextlib.suppress(KeyError):  # dropped with the model's other gauges meanwhile
                    m.deciding.remove(*labels)
            for labels, value in shown.items():
                m.deciding.labels(*labels).set(value)
            state.shown = set(shown)
            return list(state.deciding)

    def _clear_gauges(self, name: str, state: _ModelAlerts) -> None:
        """A new version is judged: the old one's level and deciding signals would keep its page firing."""
        self._metrics.drop(self._metrics.deciding, name)
        self._metrics.drop(self._metrics.model_level, name)

    def set_paused(self, name: str, paused: dict[str, Any] | None) -> None:
        """The model's automatic retraining was paused or resumed between windows: say so at once."""
        self._metrics.retrain_paused.labels(name).set(int(paused is not None))
        with self._lock:
            self._models.setdefault(name, _ModelAlerts(version="")).paused = paused

    def set_awaiting(self, name: str, version: str | None) -> None:
        """The version of ``name`` that waits for approval (None: none waits)."""
        with self._lock:
            self._models.setdefault(name, _ModelAlerts(version="")).awaiting = version

    def forget(self, name: str) -> None:
        with self._lock:
            self._models.pop(name, None)

    def active(self) -> list[dict[str, Any]]:
        """The alerts firing now, as Alertmanager lists them (labels, annotations, startsAt), critical first; a
        model's page silences its signal warnings, as the shipped Alertmanager configuration does."""
        out = []
        with self._lock:
            models = {name: (s.version, s.level, s.since, list(s.deciding), dict(s.warnings), s.retraining, s.paused,
                             s.awaiting) for name, s in self._models.items()}
        for name, (version, level, since, deciding, warnings, retraining, paused, awaiting) in sorted(
                models.items()):
            if awaiting is not None:
                out.append(self._alert(AWAITING_APPROVAL, "warning", name, awaiting, None,
                                       f"{name}: version {awaiting} awaits approval",
                                       f"A challenger of {name}, version {awaiting}, won and waits for an admin to "
                                       "approve or reject it (console, `mitiga approvals`).", {}))
            if paused is not None:
                out.append(self._alert(RETRAIN_PAUSED, "critical", name, version,
                                       datetime.fromtimestamp(float(paused.get("since", 0)), UTC),
                                       f"{name}: automatic retraining paused ({paused.get('reason')})",
                                       f"Automatic retraining of {name} is paused by {paused.get('by')}: "
                                       f"{paused.get('reason')}. Manual retraining stays possible; an admin resumes "
                                       "it (console, `mitiga retraining resume`, the detector's API).", {}))
            if level == Severity.CRITICAL:
                said = ", ".join(r.describe() for r in deciding) or "its verdict"
                out.append(self._alert(PAGE, "critical", name, version, since, page_summary(name, said),
                                       f"Model {name} version {version} is critical under the trigger policy: "
                                       f"{said}." + (" A retrain is under way." if retraining else ""),
                                       {"signals": ",".join(r.signal for r in deciding)}))
            for signal, (reading, started) in sorted(warnings.items() if level < Severity.CRITICAL else ()):
                out.append(self._alert(signal_alert(signal), "warning", name, version, started,
                                       signal_summary(name, signal),
                                       f"{SIGNALS.get(signal, signal)}: {reading.describe()}.",
                                       {"metric": signal, "drift_type": METRIC_DRIFT_TYPE.get(signal, "data")}))
            if retraining:
                out.append(self._alert(RETRAIN_RUNNING, "info", name, version, since,
                                       f"{name}: a retrain is running", "A retraining run is under way.", {}))
        return out

    def _alert(self, alert: str, severity: str, model: str, version: str, since: datetime | None, summary: str,
               description: str, extra: dict[str, str]) -> dict[str, Any]:
        return {"labels": {"alertname": alert, "severity": severity, "model": model, "version": version, **extra},
                "annotations": {"summary": summary, "description": description,
                                "runbook_url": runbook_url(alert, self._runbook)},
                "startsAt": (since or datetime.now(UTC)).isoformat(), "status": {"state": "active"},
                "source": "detector"}
