"""The retraining circuit breaker: a model whose retrains keep failing, or that keeps retraining, stops retraining on
its own until a person looks.

It opens after ``breaker_failures`` refused or failed runs in a row (a promoted challenger closes the streak), or when
more than ``breaker_max_retrains`` automatic requests fall within ``breaker_period_s``; an admin may also pause a
model by hand. While open, the trigger makes no informed or scheduled request for the model (outcome ``paused``);
manual retraining stays possible. An admin resumes it (API, console, CLI), which also clears the streak and the count.

Keys in the StateStore (shared by the detector's replicas)::

    mitiga:retrain:paused:MODEL    JSON {reason, since, by} while open
    mitiga:retrain:streak:MODEL    refused or failed runs in a row
    mitiga:retrain:recent:MODEL    JSON list of the unix times of the automatic requests within the period
"""

from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING, Any

from mitiga_core.progress import RetrainStatus

if TYPE_CHECKING:
    from mitiga_core.state import StateStore
    from mitiga_detector.settings import DetectorSettings

log = logging.getLogger(__name__)

FAILED = frozenset({RetrainStatus.REFUSED, RetrainStatus.FAILED, RetrainStatus.ROLLOUT_FAILED})


class RetrainBreaker:
    def __init__(self, settings: DetectorSettings, state: StateStore) -> None:
        self._settings = settings
        self._state = state

    def paused(self, model: str) -> dict[str, Any] | None:
        """Why and since when the model's automatic retraining is paused; None while it runs."""
        found = self._state.get(f"mitiga:retrain:paused:{model}")
        return json.loads(found) if found is not None else None

    def status(self, model: str) -> dict[str, Any]:
        return {"model": model, "paused": self.paused(model),
                "failed_in_a_row": int(self._state.get(f"mitiga:retrain:streak:{model}") or b"0"),
                "recent_requests": len(self._recent(model, None)),
                "limits": {"failures": self._settings.breaker_failures,
                           "retrains": self._settings.breaker_max_retrains,
                           "period_s": self._settings.breaker_period_s}}

    def pause(self, model: str, reason: str, by: str) -> dict[str, Any]:
        """Open the breaker (the first reason stays while it is open)."""
        record = {"reason": reason, "since": time.time(), "by": by}
        if self._state.set_if_absent(f"mitiga:retrain:paused:{model}", json.dumps(record).encode()):
            log.warning("automatic retraining paused", extra={"model": model, "reason": reason, "by": by})
            return record
        return self.paused(model) or record

    def resume(self, model: str, by: str) -> bool:
        """Close the breaker and forget the streak and the recent requests; False if it was not open."""
        self._state.delete(f"mitiga:retrain:streak:{model}")
        self._state.delete(f"mitiga:retrain:recent:{model}")
        resumed = self._state.delete(f"mitiga:retrain:paused:{model}")
        if resumed:
            log.warning("automatic retraining resumed", extra={"model": model, "by": by})
        return resumed

    def finished(self, model: str, request_id: str, status: RetrainStatus) -> None:
        """A run ended: a refused or failed one lengthens the streak, a challenger that won ends it."""
        if request_id.startswith("promote-"):  # a promotion Job carries out a decision: no training to judge
            return
        key = f"mitiga:retrain:streak:{model}"
        if status not in FAILED:
            self._state.delete(key)
            return
        streak = int(self._state.get(key) or b"0") + 1
        self._state.set(key, str(streak).encode())
        if streak >= self._settings.breaker_failures:
            self.pause(model, f"{streak} retrains in a row refused or failed", "circuit breaker")

    def requested(self, model: str, when: float) -> None:
        """An automatic request was made for the data of time ``when`` (unix seconds; the window's data time, so a
        replay of months counts months): count it; past the limit in the period, pause."""
        recent = [*self._recent(model, when), when]
        self._state.set(f"mitiga:retrain:recent:{model}", json.dumps(recent).encode())
        if len(recent) > self._settings.breaker_max_retrains:
            days = self._settings.breaker_period_s / 86400
            self.pause(model, f"{len(recent)} automatic retrains within {days:g} days", "circuit breaker")

    def _recent(self, model: str, now: float | None) -> list[float]:
        found = self._state.get(f"mitiga:retrain:recent:{model}")
        times = json.loads(found) if found is not None else []
        latest = max([*times, now or 0.0], default=0.0)
        return [t for t in times if t > latest - self._settings.breaker_period_s]
