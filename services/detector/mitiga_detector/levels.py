"""From signal values to levels, from levels to a window's verdict under the trigger policy, and from verdicts to
drift episodes (per-signal persistence, hysteresis)."""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field
from enum import IntEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Collection, Iterable, Mapping, Sequence

    from mitiga_detector.settings import Level


METRIC_DRIFT_TYPE: dict[str, str] = {
    "drift_flag": "data", "share_drifted": "data", "ks_p_value": "data", "sequential": "data", "online": "data",
    "mmd": "data", "lsdd": "data", "outlier_share": "data",
    "prediction": "prediction",
    "mae": "concept", "mse": "concept", "rmse": "concept", "r2": "concept", "mae_ratio": "concept",
    "rmse_ratio": "concept", "skill_ratio": "concept", "mase": "concept", "concept": "concept",
    "log_loss_ratio": "concept", "error_rate_ratio": "concept", "accuracy": "concept", "f1": "concept",
    "log_loss": "concept", "estimated_mae_ratio": "estimated", "estimated_error_rate_ratio": "estimated",
}
"""The kind of drift a level on each signal points to: the inputs moved (data), the outputs moved (prediction),
the realised error grew (concept), or the error estimated before labels grew (estimated)."""

PERFORMANCE_TYPES = frozenset({"concept", "estimated"})
"""Drift types that say the model got worse (rather than that its inputs or outputs moved)."""


class Severity(IntEnum):
    NONE = 1
    WARNING = 2
    CRITICAL = 3


def metric_severity(value: float, level: Level) -> Severity:
    if math.isnan(value):
        return Severity.NONE
    if level.direction == "above":
        if value >= level.critical:
            return Severity.CRITICAL
        return Severity.WARNING if value > level.warning else Severity.NONE
    if value < level.critical:
        return Severity.CRITICAL
    return Severity.WARNING if value < level.warning else Severity.NONE


def window_severity(values: Mapping[str, float], levels: Mapping[str, Level], use: Iterable[str]) -> Severity:
    """The worst level among the metrics in ``use`` that have a value."""
    worst = Severity.NONE
    for name in use:
        if name in values and name in levels:
            worst = max(worst, metric_severity(values[name], levels[name]))
    return worst


def may_be_critical(signal: str, policy: str) -> bool:
    """Whether ``signal`` may make a window critical (and so retrain) under the trigger ``policy``."""
    if policy == "any":
        return True
    performance = METRIC_DRIFT_TYPE.get(signal, "data") in PERFORMANCE_TYPES
    return performance if policy == "performance" else not performance


def pressure(values: Mapping[str, float], levels: Mapping[str, Level], signals: Iterable[str]) -> float:
    """How far past its critical level the furthest of ``signals`` is (1 = at it; 2 = twice the error a critical
    level allows), 0 when none has a value. A trigger compares it across attempts: an episode whose model keeps
    getting worse is worth another attempt even after the gate refused the last ones."""
    worst = 0.0
    for name in signals:
        value, level = values.get(name), levels.get(name)
        if value is None or level is None or not math.isfinite(value):
            continue
        if level.direction == "above" and level.critical > 0:
            worst = max(worst, value / level.critical)
        elif level.direction == "below" and value > 0:
            worst = max(worst, level.critical / value)
    return worst


@dataclass(frozen=True)
class Verdict:
    level: Severity
    """The window's level: the worst confirmed signal, capped at warning for signals the policy does not let
    trigger."""
    signals: dict[str, Severity]
    """Every signal confirmed at warning or worse (before the cap)."""
    decided_by: str
    """The first of ``deciding`` ("" when none decided)."""
    deciding: tuple[str, ...] = ()
    """Every signal that reached the verdict's level and may set it under the policy: together they decided."""

    @property
    def types(self) -> list[str]:
        """The drift types of the confirmed signals, in a stable order."""
        found = {METRIC_DRIFT_TYPE.get(name, "data") for name in self.signals}
        return [t for t in ("data", "prediction", "concept", "estimated") if t in found]


SCALE_DEPENDENT = frozenset({"mae_ratio", "rmse_ratio", "estimated_mae_ratio"})
"""Error ratios in the data's own units: on a series whose scale grows they grow with it (``forecast_scale_free``)."""


def verdict(confirmed: Mapping[str, Severity], policy: str, order: Sequence[str],
            warn_only: Collection[str] = ()) -> Verdict:
    """The window's verdict from each signal's confirmed level; ``warn_only`` signals stop at warning whatever
    the policy."""
    fired = {name: confirmed[name] for name in order if confirmed.get(name, Severity.NONE) >= Severity.WARNING}
    capped = {name: severity if may_be_critical(name, policy) and name not in warn_only
              else min(severity, Severity.WARNING) for name, severity in fired.items()}
    level = max(capped.values(), default=Severity.NONE)
    deciding = tuple(name for name, severity in capped.items() if severity == level and level > Severity.NONE)
    return Verdict(level, fired, deciding[0] if deciding else "", deciding)


@dataclass
class EpisodeTracker:
    """Confirms levels and tracks drift episodes.

    A level counts once it has held for ``persistence`` consecutive windows (the lowest of them). An episode opens
    when a warning or worse is confirmed; within it the level only escalates; it closes after ``clear_after``
    consecutive windows below warning (hysteresis), so levels don't flap.
    """

    persistence: int
    clear_after: int
    level: Severity = Severity.NONE
    episode_id: str | None = None
    _streak: list[Severity] = field(default_factory=list)
    _calm: int = 0
    _signals: dict[str, list[int]] = field(default_factory=dict)
    """Each signal's recent levels, for its own persistence."""

    def snapshot(self) -> dict[str, Any]:
        return {"level": int(self.level), "episode_id": self.episode_id, "streak": [int(s) for s in self._streak],
                "calm": self._calm, "signals": self._signals}

    def restore(self, data: dict[str, Any]) -> None:
        self.level, self.episode_id = Severity(data["level"]), data["episode_id"]
        self._streak, self._calm = [Severity(s) for s in data["streak"]], int(data["calm"])
        self._signals = {k: [int(v) for v in vs] for k, vs in (data.get("signals") or {}).items()}

    def confirm(self, observed: Mapping[str, Severity], persistence: Mapping[str, int],
                default: int) -> dict[str, Severity]:
        """Each observed signal's confirmed level: the lowest of its last ``persistence`` observations (NONE until it
        has that many). A signal not observed in a window (no labels yet, a test not run) keeps its streak."""
        confirmed = {}
        for name, severity in observed.items():
            need = persistence.get(name, default)
            streak = [*self._signals.get(name, []), int(severity)][-need:]
            self._signals[name] = streak
            confirmed[name] = Severity(min(streak)) if len(streak) == need else Severity.NONE
        return confirmed

    def update(self, observed: Severity, opening_id: str | None = None) -> tuple[Severity, bool, bool]:
        """Feed one window's level; returns (confirmed level, episode opened, episode closed). ``opening_id`` names
        the episode this window would open: derived from the window, it is the same when a restarted detector
        replays the window, so the episode (and its retrain request) is not made twice."""
        self._streak = [*self._streak, observed][-self.persistence :]
        held = min(self._streak) if len(self._streak) == self.persistence else Severity.NONE
        self._calm = self._calm + 1 if observed == Severity.NONE else 0
        opened = closed = False
        if self.episode_id is None:
            if held >= Severity.WARNING:
                self.episode_id, self.level, opened = opening_id or uuid.uuid4().hex, held, True
        elif self._calm >= self.clear_after:
            self.episode_id, self.level, closed = None, Severity.NONE, True
        else:
            self.level = max(self.level, held)
        return self.level, opened, closed
