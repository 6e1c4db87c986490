"""The monitors of the model versions this detector replica watches.

A monitor is built from its bundle the first time an event names its version, and its stream state (open window,
labelled window, sequential statistics) is read back from the checkpoint; the ones touched since the last checkpoint
are saved with the next one. When the consumer's partitions change, the monitors of the models this replica still
owns keep what was fitted on the bundle and reread their stream state; the others are dropped.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from mitiga_core.errors import EventDecodeError, MitigaError
from mitiga_detector.monitor import ModelMonitor, build_monitor

if TYPE_CHECKING:
    from collections.abc import Callable

    from mitiga_core.state import Write
    from mitiga_core.store import ModelStore
    from mitiga_detector.checkpoint import Checkpoints
    from mitiga_detector.metrics import DetectorMetrics
    from mitiga_detector.settings import DetectorSettings


class Monitors:
    def __init__(self, settings: DetectorSettings, *, store: ModelStore, checkpoints: Checkpoints,
                 metrics: DetectorMetrics) -> None:
        self._settings = settings
        self._store = store
        self._checkpoints = checkpoints
        self._metrics = metrics
        self._monitors: dict[tuple[str, str], ModelMonitor] = {}
        self._dirty: set[tuple[str, str]] = set()
        """Model versions whose monitor changed since the last checkpoint."""
        self.built = 0
        """Monitors built since the start."""

    def get(self, name: str, version: str) -> ModelMonitor:
        """The version's monitor, built on first use; raises EventDecodeError for a model that cannot be monitored
        (its events belong in the dead-letter topic). It is saved with the next checkpoint."""
        key = (name, version)
        if key not in self._monitors:
            start = time.perf_counter()
            try:
                monitor = build_monitor(self._store, name, version, self._settings)
            except MitigaError as exc:
                raise EventDecodeError(f"unknown model: {exc}") from exc
            except ValueError as exc:  # an invalid model name, or unreadable reference arrays
                raise EventDecodeError(f"model {name!r} version {version!r} cannot be monitored: {exc}") from exc
            self._checkpoints.restore_monitor(monitor)
            monitor.levels_to_show = monitor.levels(self._settings.thresholds,
                                                    self._settings.model_thresholds.get(name))
            self._monitors[key] = monitor
            self.built += 1
            self._metrics.seconds.labels("build").observe(time.perf_counter() - start)
            self._metrics.monitors.set(len(self._monitors))
        self._dirty.add(key)
        return self._monitors[key]

    def names(self) -> set[str]:
        return {name for name, _ in self._monitors}

    def writes(self) -> list[Write]:
        """The checkpoint writes of the monitors changed since the last :meth:`saved`."""
        return [self._checkpoints.monitor_write(self._monitors[key]) for key in sorted(self._dirty)]

    def saved(self) -> None:
        self._dirty.clear()

    def reset(self, owns: Callable[[str], bool]) -> None:
        """Back to the checkpoint: the owned models' monitors reread their stream state, the others are dropped."""
        kept = {key: monitor for key, monitor in self._monitors.items() if owns(key[0])}
        self._monitors.clear()
        self._dirty.clear()
        for key, monitor in kept.items():  # what was fitted on the bundle stays; the stream state is reread
            monitor.restart(self._settings)
            self._checkpoints.restore_monitor(monitor)
            self._monitors[key] = monitor
        self._metrics.monitors.set(len(self._monitors))
