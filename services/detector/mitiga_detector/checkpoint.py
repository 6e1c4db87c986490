"""Checkpoints of the detector's in-memory state in the state store.

The consumer writes them after each handled batch and before committing its offsets, in one all-or-none batch
with the side effects of the events it covers (their seen marks, the predictions their feedback took, the labelled
rows they made; see :class:`~mitiga_core.state.StagedWrites`), so a detector that is killed and restarted continues
where the committed offsets say it stopped, with nothing counted twice and nothing lost. A checkpoint holds:
- per model version: the open window, the labelled performance window, the count of windows tested, and the
  sequential test's statistics with the alarms not yet in a window (so a replay closes the same windows);
- per model: the drift-episode tracker with the version it is about, so an open episode keeps its id (and its
  retrain request is not made a second time);
- per model: the feedback still waiting for its prediction (:mod:`mitiga_detector.parking`).
Everything is per model, so a model moves between detector replicas (a consumer-group rebalance) with its state.
The ADWIN / Page-Hinkley error-stream detectors are rebuilt by replaying the restored labelled window's errors.
Checkpoints are JSON, never pickles.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from mitiga_core.state import Write

if TYPE_CHECKING:
    from mitiga_core.state import StateStore
    from mitiga_detector.levels import EpisodeTracker
    from mitiga_detector.monitor import ModelMonitor


class Checkpoints:
    def __init__(self, state: StateStore, namespace: str) -> None:
        self._state = state
        self._prefix = f"mitiga:checkpoint:{namespace}"

    def _monitor_key(self, name: str, version: str) -> str:
        return f"{self._prefix}:monitor:{name}:{version}"

    def _episode_key(self, name: str) -> str:
        return f"{self._prefix}:episode:{name}"

    def _read(self, key: str) -> dict[str, Any] | None:
        raw = self._state.get(key)
        return None if raw is None else dict(json.loads(raw))

    def monitor_write(self, monitor: ModelMonitor) -> Write:
        body = {"window": monitor.window.snapshot(), "performance": monitor.performance.snapshot(),
                "windows_seen": monitor.windows_seen, "alarms": sorted(monitor.alarms),
                "sequential": monitor.sequential.snapshot() if monitor.sequential is not None else {}}
        return Write("set", self._monitor_key(monitor.manifest.name, monitor.manifest.version),
                     json.dumps(body).encode())

    def restore_monitor(self, monitor: ModelMonitor) -> bool:
        body = self._read(self._monitor_key(monitor.manifest.name, monitor.manifest.version))
        if body is None:
            return False
        monitor.window.restore(body["window"])
        monitor.performance.restore(body["performance"], monitor.manifest)
        monitor.windows_seen = int(body["windows_seen"])
        monitor.alarms.update(body.get("alarms", []))
        if monitor.sequential is not None:
            monitor.sequential.restore(body.get("sequential") or {})
        return True

    def episode_write(self, name: str, version: str, tracker: EpisodeTracker) -> Write:
        body = {"version": version, "tracker": tracker.snapshot()}
        return Write("set", self._episode_key(name), json.dumps(body).encode())

    def parked_write(self, model: str, items: list[list[Any]]) -> Write:
        return Write("set", f"{self._prefix}:parked:{model}", json.dumps(items).encode())

    def read_parked(self, model: str) -> tuple[list[list[Any]], bool]:
        """The model's parked feedback, and whether it came from the one list of all models that detectors before
        replicas kept (to be saved in the model's own key)."""
        raw = self._state.get(f"{self._prefix}:parked:{model}")
        if raw is not None:
            return list(json.loads(raw)), False
        legacy = self._state.get(f"{self._prefix}:parked")
        items = [] if legacy is None else [item for item in json.loads(legacy) if item[0] == model]
        return items, bool(items)

    def restore_episode(self, name: str, version: str, tracker: EpisodeTracker) -> bool:
        """Restore ``tracker`` when the checkpoint is about ``version``."""
        body = self._read(self._episode_key(name))
        if body is None or body["version"] != version:
            return False
        tracker.restore(body["tracker"])
        return True
