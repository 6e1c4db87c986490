"""The one way a model's champion changes: point the store at the version and build the ``ModelRollout`` event that
tells every replica. The retrainer promotes a challenger, the inference service promotes an upload or rolls back,
and the CLI rolls back; each then sends the event the way its transport allows (the publisher, the bus).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mitiga_core.errors import Conflict, ModelNotFound
from mitiga_core.events import new_id
from mitiga_core.pb.mitiga.v1 import events_pb2 as pb

if TYPE_CHECKING:
    from mitiga_core.store import ModelStore

ROLLBACK = "rollback"


def promote(store: ModelStore, name: str, version: str, *, reason: str, request_id: str = "",
            previous: str | None = None) -> pb.ModelRollout:
    """Make ``version`` the champion of ``name`` and return the event announcing it. ``previous`` is the champion
    it replaces when the caller knows better than the store (the retrainer's base version when there was none)."""
    before = store.champion(name) or previous or ""
    store.set_champion(name, version)
    rollout = pb.ModelRollout(event_id=new_id(), model_name=name, version=version, previous_version=before,
                              reason=reason, request_id=request_id)
    rollout.time.GetCurrentTime()
    return rollout


def rollback(store: ModelStore, name: str, to: str | None = None) -> pb.ModelRollout:
    """Return ``name`` to the champion before this one (or to ``to``), record it in the decision log beside the
    gate's decisions, and return the event announcing it."""
    current = store.champion(name)
    if current is None:
        raise ModelNotFound(f"model {name!r} has no champion")
    if to is None:
        to = next((v for v in reversed(store.champion_history(name)) if v != current), None)
        if to is None:
            raise Conflict(f"model {name!r} has no earlier champion to return to")
    elif to not in store.list_versions(name):
        raise ModelNotFound(f"version: model {name!r} has no version {to!r}")
    rollout = promote(store, name, to, reason=ROLLBACK)
    store.record_decision(name, {"rollback": True, "from": current, "version": to, "promote": True})
    return rollout
