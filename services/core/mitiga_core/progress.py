"""Progress of a retraining run, kept in the state store under its request id so that any component can show it
(the detector's API, ``mitiga retrain``). Its status is a :class:`RetrainStatus`, spelled the same by every
service and the CLI."""

from __future__ import annotations

import enum
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mitiga_core.state import StateStore

TTL_S = 7 * 86400


class RetrainStatus(enum.StrEnum):
    """Where a retraining run is: ``running``, then one terminal outcome."""

    RUNNING = "running"
    PROMOTED = "promoted"  # the challenger won the gate and is live
    REFUSED = "refused"  # the gate kept the champion
    CANDIDATE = "candidate"  # the challenger won the gate and went on live trial (shadow or canary)
    FAILED = "failed"  # the run could not train or gate
    ROLLOUT_FAILED = "rollout_failed"  # the challenger won but its rollout failed (rolled back)

    @property
    def finished(self) -> bool:
        return self is not RetrainStatus.RUNNING

    @property
    def succeeded(self) -> bool:
        """The run reached a decision of the gate and carried it out."""
        return self in (RetrainStatus.PROMOTED, RetrainStatus.REFUSED, RetrainStatus.CANDIDATE)

    @classmethod
    def of(cls, value: object) -> RetrainStatus | None:
        """The status named by ``value``; None for anything else (an absent or unknown record)."""
        try:
            return cls(str(value))
        except ValueError:
            return None


def lock_key(model: str) -> str:
    """The retrain lock of ``model`` in the state store: the detector takes it (SET NX with a TTL) when it asks for a
    retrain, the run that holds it releases it when done; one run per model at a time."""
    return f"mitiga:retrain:lock:{model}"


def _key(request_id: str) -> str:
    return f"mitiga:retrain:progress:{request_id}"


def write_progress(state: StateStore, request_id: str, **fields: Any) -> None:
    """Merge ``fields`` into the run's progress record."""
    current = read_progress(state, request_id) or {"request_id": request_id}
    state.set(_key(request_id), json.dumps({**current, **fields}, default=str).encode(), ttl_s=TTL_S)


def read_progress(state: StateStore, request_id: str) -> dict[str, Any] | None:
    raw = state.get(_key(request_id))
    return None if raw is None else dict(json.loads(raw))
