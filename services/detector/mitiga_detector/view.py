"""The detector's read model: what the API and the reports read (each model's recent window records, its last
window and monitor, its episode), behind the core's lock, so that nothing outside the core touches the lock."""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import threading

    from mitiga_detector.monitor import ModelMonitor
    from mitiga_detector.windows import Window


class DetectorView:
    def __init__(self, lock: threading.Lock, history: int) -> None:
        self._lock = lock
        self._keep = history
        self.history: dict[str, deque[dict[str, Any]]] = {}
        """Written by the core under its lock; read here."""
        self.last_window: dict[str, tuple[ModelMonitor, Window]] = {}

    def add(self, name: str, record: dict[str, Any]) -> None:
        """A judged window's record (the core holds the lock)."""
        self.history.setdefault(name, deque(maxlen=self._keep)).append(record)

    def forget(self, name: str) -> None:
        self.history.pop(name, None)
        self.last_window.pop(name, None)

    def windows(self, name: str) -> list[dict[str, Any]]:
        """The model's recent window records, oldest first (a copy)."""
        with self._lock:
            return list(self.history.get(name, []))

    def last(self, name: str) -> tuple[ModelMonitor, Window, list[dict[str, Any]]]:
        """The model's last tested window with its monitor, and its records; KeyError before its first window."""
        with self._lock:
            monitor, window = self.last_window[name]
            return monitor, window, list(self.history.get(name, []))
