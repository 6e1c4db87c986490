"""A person in the loop: a challenger that won waits as a candidate (mode ``approval``, serving no traffic) until an
admin approves it (the trigger launches a promotion Job, which makes it the champion) or rejects it, or it expires
after ``approval_ttl_s``. Each decision goes to the model's decision log with who made it; while one waits, the
detector exports ``mitiga_promotion_awaiting_approval`` (the ``MitigaAwaitingApproval`` notification)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mitiga_core.errors import Conflict
from mitiga_core.events import Topic
from mitiga_core.promotion import APPROVAL, Candidate, end_trial

if TYPE_CHECKING:
    from mitiga_core.publisher import EventPublisher
    from mitiga_core.store import ModelStore
    from mitiga_detector.metrics import DetectorMetrics
    from mitiga_detector.settings import DetectorSettings
    from mitiga_detector.trigger import RetrainTrigger

log = logging.getLogger(__name__)


class Approvals:
    def __init__(self, settings: DetectorSettings, *, store: ModelStore, trigger: RetrainTrigger,
                 publisher: EventPublisher, metrics: DetectorMetrics) -> None:
        self._settings = settings
        self._store = store
        self._trigger = trigger
        self._publisher = publisher
        self._metrics = metrics
        self._shown: dict[str, str | None] = {}
        """The version each model's awaiting gauge shows (None: none waits)."""

    def waiting(self, model: str) -> Candidate | None:
        found = Candidate.of(self._store.candidate(model))
        return found if found is not None and found.mode == APPROVAL else None

    def evidence(self, model: str) -> dict[str, Any]:
        """What a person decides on: the waiting version, its gate decision and its live trial's (when one ran),
        and the episode's deciding signals as the retrain request recorded them."""
        candidate = self.waiting(model)
        if candidate is None:
            return {"model": model, "waiting": None}
        decisions = [d for d in self._store.decisions(model) if d.get("version") == candidate.version]
        since = datetime.fromisoformat(candidate.since) if candidate.since else datetime.now(UTC)
        return {"model": model, "waiting": {"version": candidate.version, "champion": candidate.champion,
                                            "since": candidate.since, "request_id": candidate.request_id,
                                            "expires": (since.timestamp() + self._settings.approval_ttl_s)},
                "gate": next((d for d in decisions if not d.get("trial")), None),
                "trial": next((d for d in decisions if d.get("trial")), None)}

    def decide(self, model: str, version: str, approve: bool, by: str, reason: str = "") -> str:
        """An admin's decision on the waiting ``version``; returns the outcome (``approved``: the promotion Job's
        launch outcome follows as ``promotion_<outcome>``). Raises Conflict when ``version`` is not waiting."""
        candidate = self.waiting(model)
        if candidate is None or candidate.version != version:
            raise Conflict(f"version {version} of {model!r} is not awaiting approval (waiting: "
                           f"{candidate.version if candidate else 'none'})")
        if approve:
            launched = self._trigger.promote(model, candidate.champion, candidate.version)
            if launched not in ("requested", "duplicate"):
                raise Conflict(f"the promotion of {model} version {version} could not start ({launched}): "
                               "a retrain holds the model's lock; approve again when it ends")
            self._record(model, candidate, "approved", by, reason)
            return "approved"
        self._end(model, candidate, "rejected", by, reason or "rejected")
        return "rejected"

    def check(self, model: str, now: datetime | None = None) -> Candidate | None:
        """Once per window, one read of the store: the candidate still waiting (one that waited longer than
        ``approval_ttl_s`` expires first), shown by the gauge."""
        candidate = self.waiting(model)
        if candidate is not None and self._expire(model, candidate, now):
            candidate = None
        self._show(model, candidate)
        return candidate

    def expire(self, model: str, now: datetime | None = None) -> bool:
        """End a candidate that waited longer than ``approval_ttl_s``; True when one expired."""
        candidate = self.waiting(model)
        return candidate is not None and self._expire(model, candidate, now)

    def _expire(self, model: str, candidate: Candidate, now: datetime | None) -> bool:
        if not candidate.since:
            return False
        waited = ((now or datetime.now(UTC)) - datetime.fromisoformat(candidate.since)).total_seconds()
        if waited < self._settings.approval_ttl_s:
            return False
        self._end(model, candidate, "expired", "", f"no decision within {self._settings.approval_ttl_s:g} s")
        return True

    def _show(self, model: str, candidate: Candidate | None) -> None:
        """The awaiting gauge follows the waiting version (rewritten only when it changes)."""
        version = candidate.version if candidate is not None else None
        if self._shown.get(model, "") == version:
            return
        self._metrics.drop(self._metrics.awaiting_approval, model)
        if version is not None:
            self._metrics.awaiting_approval.labels(model, version).set(1)
        self._shown[model] = version

    def _end(self, model: str, candidate: Candidate, outcome: str, by: str, reason: str) -> None:
        event = end_trial(self._store, model, candidate.version, reason=f"{outcome}: {reason}")
        if event is not None:
            self._publisher.offer(Topic.ROLLOUT, model, lambda: event)
        self._record(model, candidate, outcome, by, reason)

    def _record(self, model: str, candidate: Candidate, outcome: str, by: str, reason: str) -> None:
        record = {"time": datetime.now(UTC).isoformat(), "approval": outcome, "by": by, "reason": reason,
                  "version": candidate.version, "base_version": candidate.champion, "promote": outcome == "approved",
                  "request_id": candidate.request_id}
        self._store.record_decision(model, record)
        self._metrics.approvals.labels(model, outcome).inc()
        self._show(model, self.waiting(model))
        log.info("approval decision", extra={"model": model, **record})
