"""Progress of a retraining run, kept in the state store under its request id so that any component can show it
(the detector's API, ``mitiga retrain``). Status: ``running``, then ``promoted``, ``refused`` or ``failed``."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mitiga_core.state import StateStore

TTL_S = 7 * 86400


def _key(request_id: str) -> str:
    return f"mitiga:retrain:progress:{request_id}"


def write_progress(state: StateStore, request_id: str, **fields: Any) -> None:
    """Merge ``fields`` into the run's progress record."""
    current = read_progress(state, request_id) or {"request_id": request_id}
    state.set(_key(request_id), json.dumps({**current, **fields}, default=str).encode(), ttl_s=TTL_S)


def read_progress(state: StateStore, request_id: str) -> dict[str, Any] | None:
    raw = state.get(_key(request_id))
    return None if raw is None else dict(json.loads(raw))
