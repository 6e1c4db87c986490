"""From metric values to levels, and from levels to drift episodes (persistence and hysteresis)."""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field
from enum import IntEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from mitiga_detector.settings import Level


METRIC_DRIFT_TYPE: dict[str, str] = {
    "drift_flag": "data", "share_drifted": "data", "ks_p_value": "data",
    "mae": "concept", "mse": "concept", "rmse": "concept", "r2": "concept",
}
"""The kind of drift a level on each metric points to: inputs moved (data), or the error grew (concept)."""


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

    def snapshot(self) -> dict[str, Any]:
        return {"level": int(self.level), "episode_id": self.episode_id, "streak": [int(s) for s in self._streak],
                "calm": self._calm}

    def restore(self, data: dict[str, Any]) -> None:
        self.level, self.episode_id = Severity(data["level"]), data["episode_id"]
        self._streak, self._calm = [Severity(s) for s in data["streak"]], int(data["calm"])

    def update(self, observed: Severity) -> tuple[Severity, bool, bool]:
        """Feed one window's level; returns (confirmed level, episode opened, episode closed)."""
        self._streak = [*self._streak, observed][-self.persistence :]
        held = min(self._streak) if len(self._streak) == self.persistence else Severity.NONE
        self._calm = self._calm + 1 if observed == Severity.NONE else 0
        opened = closed = False
        if self.episode_id is None:
            if held >= Severity.WARNING:
                self.episode_id, self.level, opened = uuid.uuid4().hex, held, True
        elif self._calm >= self.clear_after:
            self.episode_id, self.level, closed = None, Severity.NONE, True
        else:
            self.level = max(self.level, held)
        return self.level, opened, closed
