"""The judge: from a window's signal values to a typed report, under the trigger policy.

It owns the models' episode trackers (checkpointed by the core): each signal's level is confirmed over its
persistence, the window's verdict is taken under the policy, and the episode escalates, holds or closes. The
:class:`Report` is what everything downstream reads: the drift event, the metrics and alerts, the window record the
API, the console and the CLI show, and the trigger.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mitiga_detector.levels import (
    SCALE_DEPENDENT,
    EpisodeTracker,
    Severity,
    may_be_critical,
    metric_severity,
    pressure,
    verdict,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

    from mitiga_detector.checkpoint import Checkpoints
    from mitiga_detector.levels import Verdict
    from mitiga_detector.monitor import ModelMonitor
    from mitiga_detector.settings import DetectorSettings, Level
    from mitiga_detector.windows import Window


@dataclass(frozen=True)
class Report:
    """One window judged."""

    level: Severity
    """The episode's level after this window (it only escalates until the episode closes)."""
    before: Severity
    """The episode's level before this window."""
    verdict: Verdict
    """This window's own verdict: its level, every confirmed signal, the deciding ones."""
    confirmed: dict[str, Severity]
    """Each counted signal's confirmed level (before the policy's cap)."""
    values: dict[str, float]
    levels: dict[str, Level]
    warn_only: frozenset[str]
    episode_id: str | None
    """The episode this window belongs to (the one it closed, when it closed one)."""
    opened: bool
    closed: bool

    @property
    def changed(self) -> bool:
        return self.opened or self.closed or self.level != self.before

    @property
    def asks_retrain(self) -> bool:
        """A retrain is asked only while this window's own verdict is critical: an episode whose model has
        recovered makes no more attempts however long its inputs stay drifted (input drift keeps it open)."""
        return self.level == Severity.CRITICAL and self.verdict.level == Severity.CRITICAL and bool(self.episode_id)

    def pressure(self, policy: str) -> float:
        """How far past their critical levels the signals that may retrain are (the trigger compares attempts)."""
        may = [s for s in self.confirmed if s not in self.warn_only and may_be_critical(s, policy)]
        return pressure(self.values, self.levels, may)


class Judge:
    def __init__(self, settings: DetectorSettings, checkpoints: Checkpoints) -> None:
        self._settings = settings
        self._checkpoints = checkpoints
        self._episodes: dict[str, tuple[str, EpisodeTracker]] = {}
        """Per model: the version the episode is about, and its tracker. A new version starts afresh."""
        self._judged: set[str] = set()
        """The models judged since the last checkpoint (only their trackers changed)."""

    def judge(self, monitor: ModelMonitor, window: Window, values: dict[str, float]) -> Report:
        s, name, version = self._settings, monitor.manifest.name, monitor.manifest.version
        tracker = self._tracker(name, version)
        self._judged.add(name)
        levels = monitor.levels(s.thresholds, s.model_thresholds.get(name))
        use = [signal for signal in s.level_metrics if signal in values and signal in levels]
        observed = {signal: metric_severity(values[signal], levels[signal]) for signal in use}
        confirmed = tracker.confirm(observed, s.signal_persistence, s.persistence)
        warn_only = SCALE_DEPENDENT if (monitor.manifest.kind.scale_free_signals and s.forecast_scale_free) \
            else frozenset()
        result = verdict(confirmed, s.trigger_policy, use, warn_only)
        before, episode_before = tracker.level, tracker.episode_id
        opening = uuid.uuid5(uuid.NAMESPACE_URL, f"mitiga:{name}:{version}:{window.start.isoformat()}:"
                                                 f"{window.end.isoformat()}:{len(window)}").hex
        level, opened, closed = tracker.update(result.level, opening)
        return Report(level, before, result, confirmed, values, levels, warn_only,
                      tracker.episode_id or episode_before, opened, closed)

    def _tracker(self, name: str, version: str) -> EpisodeTracker:
        tracked_version, tracker = self._episodes.get(name, (version, None))
        if tracker is None or tracked_version != version:
            tracker = EpisodeTracker(1, self._settings.clear_after)  # persistence is per signal (confirm)
            self._checkpoints.restore_episode(name, version, tracker)
            self._episodes[name] = (version, tracker)
        return tracker

    def episode(self, name: str) -> tuple[Severity, str | None]:
        """The model's episode level and id (none yet: NONE, None)."""
        found = self._episodes.get(name)
        return (found[1].level, found[1].episode_id) if found else (Severity.NONE, None)

    def trackers(self) -> Iterator[tuple[str, str, EpisodeTracker]]:
        """The trackers of the models judged since :meth:`saved` (a checkpoint writes those alone: with a thousand
        models, writing every tracker at every checkpoint cost more than the windows)."""
        for name in sorted(self._judged):
            version, tracker = self._episodes[name]
            yield name, version, tracker

    def saved(self) -> None:
        self._judged.clear()

    def clear(self) -> None:
        self._episodes.clear()
        self._judged.clear()
