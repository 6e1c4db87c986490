"""The end of a live trial the detector's promotion policy won: make the candidate the champion.

A promotion request (``trigger=promotion``, option ``promote_version``) does no training: it checks that the version
is still the one on trial against the same champion, rolls it out (Helm, when configured) and only then points the
champion at it, ends the trial and announces the rollout. A rollout that fails ends the trial too (the champion
stays), recorded in the decision log.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from mitiga_core.champion import promote
from mitiga_core.errors import Conflict
from mitiga_core.promotion import Candidate, end_trial
from mitiga_retrainer.rollout import RolloutFailed

if TYPE_CHECKING:
    from collections.abc import Callable

    from mitiga_core.pb.mitiga.v1 import events_pb2 as pb
    from mitiga_core.store import ModelStore

log = logging.getLogger(__name__)


def promote_candidate(store: ModelStore, name: str, version: str, *, request_id: str,
                      go_live: Callable[[str], None], publish: Callable[[pb.ModelRollout], None]) -> str:
    """Raises Conflict when ``version`` is not on trial any more (another challenger replaced it, or the champion
    changed meanwhile), RolloutFailed when Helm could not roll it out."""
    candidate = Candidate.of(store.candidate(name))
    if candidate is None or candidate.version != version:
        raise Conflict(f"version {version} of {name!r} is not on trial (the candidate is "
                       f"{candidate.version if candidate else 'none'}): nothing to promote")
    champion = store.champion(name)
    if champion != candidate.champion:
        ended = end_trial(store, name, version, reason=f"the champion changed to {champion} during the trial")
        if ended is not None:
            publish(ended)
        raise Conflict(f"the champion of {name!r} changed from {candidate.champion} to {champion} during the trial "
                       f"of version {version}: the trial is void")
    try:
        go_live(version)
    except RolloutFailed:
        ended = end_trial(store, name, version, reason="its rollout failed")
        if ended is not None:
            publish(ended)
        raise
    rollout = promote(store, name, version, reason=f"promoted after its {candidate.mode} trial",
                      request_id=request_id, previous=candidate.champion)
    store.set_candidate(name, None)
    publish(rollout)
    log.info("candidate promoted", extra={"model": name, "version": version, "stage": candidate.mode,
                                          "previous": candidate.champion})
    return version
