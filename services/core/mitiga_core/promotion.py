"""A challenger on live trial before promotion: the candidate record in the model store and the events that
announce it.

``promotion.mode`` says what happens to a challenger that passed the offline gate: ``offline`` promotes it at once
(as before); ``shadow`` serves it a copy of live requests off the request path; ``canary`` lets it answer a share
of live traffic (sticky by a request key), the champion then running off the path on those requests. Either way
both versions predict every request, so when ground truth arrives they are compared on the same requests, and the
detector's promotion policy promotes or discards the candidate (``mitiga_detector.promotion``).

The store holds the candidate (the truth); a ``ModelRollout`` with a ``stage`` tells every inference replica to
look again, as it does for a new champion.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from mitiga_core.pb.mitiga.v1 import events_pb2 as pb
    from mitiga_core.store import ModelStore

PromotionMode = Literal["offline", "shadow", "canary"]
Approval = Literal["none", "required"]
WITHDRAWN = "withdrawn"
APPROVAL: Literal["approval"] = "approval"
"""The candidate mode of a challenger that won (its gate, and its trial when one ran) and waits for a person: it
serves no traffic; an admin approves it (a promotion Job makes it the champion) or rejects it, or it expires."""


def approval_required(policy: Approval, models: list[str], name: str) -> bool:
    """Whether a winning challenger of ``name`` waits for a person: ``policy`` for every model, or ``name`` listed."""
    return policy == "required" or name in models


@dataclass(frozen=True)
class Candidate:
    version: str
    mode: Literal["shadow", "canary", "approval"]
    champion: str
    """The champion it is compared with (the trial ends if the champion changes meanwhile)."""
    canary_percent: float = 0.0
    since: str = ""
    request_id: str = ""

    @classmethod
    def of(cls, raw: dict[str, object] | None) -> Candidate | None:
        if not raw or raw.get("mode") not in ("shadow", "canary", APPROVAL):
            return None
        return cls(version=str(raw["version"]), mode=raw["mode"], champion=str(raw.get("champion", "")),  # type: ignore[arg-type]
                   canary_percent=float(str(raw.get("canary_percent", 0.0))), since=str(raw.get("since", "")),
                   request_id=str(raw.get("request_id", "")))

    @property
    def live(self) -> bool:
        """On live trial (it predicts requests); False while it waits for a person's approval."""
        return self.mode != APPROVAL


def outcome(decision: dict[str, object]) -> str:
    """One decision-log entry in words: ``promoted``, ``refused``, ``on shadow trial``, ``promoted after canary
    trial``, ``discarded after shadow trial``, ``expired after shadow trial``, ``rollback``, ``rollout failed``."""
    if decision.get("rollback"):
        return "rollback"
    if decision.get("approval"):
        return f"{decision['approval']} by {decision.get('by') or 'nobody'}"
    if decision.get("awaiting_approval"):
        return "awaiting approval"
    if decision.get("rollout") == "failed":
        return "rollout failed"
    stage = decision.get("stage")
    if decision.get("trial"):
        word = decision.get("outcome") or ("promoted" if decision.get("promote") else "discarded")
        return f"{word} after {stage} trial"
    if decision.get("promote"):
        return f"on {stage} trial" if stage else "promoted"
    return "refused"


def _event(name: str, version: str, *, previous: str, stage: str, reason: str, request_id: str = "",
           canary_percent: float = 0.0) -> pb.ModelRollout:
    # imported here: the console reads candidates and decisions, and its image has no protobuf
    from mitiga_core.events import new_id
    from mitiga_core.pb.mitiga.v1 import events_pb2 as pb

    event = pb.ModelRollout(event_id=new_id(), model_name=name, version=version, previous_version=previous,
                            reason=reason, request_id=request_id, stage=stage, canary_percent=canary_percent)
    event.time.GetCurrentTime()
    return event


def start_trial(store: ModelStore, name: str, candidate: Candidate) -> pb.ModelRollout:
    """Put ``candidate`` on live trial (replacing any other) and return the event announcing it."""
    stamped = candidate if candidate.since else Candidate(**{**asdict(candidate),
                                                             "since": datetime.now(UTC).isoformat()})
    store.set_candidate(name, asdict(stamped))
    return _event(name, candidate.version, previous=candidate.champion, stage=candidate.mode,
                  reason=f"candidate in {candidate.mode}", request_id=candidate.request_id,
                  canary_percent=candidate.canary_percent)


def end_trial(store: ModelStore, name: str, version: str, reason: str) -> pb.ModelRollout | None:
    """End the trial of ``version`` if it is still the candidate; the event announcing it, or None when another
    trial (or none) is running."""
    current = Candidate.of(store.candidate(name))
    if current is None or current.version != version:
        return None
    store.set_candidate(name, None)
    return _event(name, version, previous=current.champion, stage=WITHDRAWN, reason=reason)
