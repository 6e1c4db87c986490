"""Request ids, unique per model: the detector joins ground truth to a prediction by its id, so an id must never
be taken over by another request, and ground truth must fit the prediction it is sent for.

Each client-chosen id is kept in the state store (shared by the replicas when it is Redis) for ``request_id_ttl_s``,
at most ``request_ids_max`` per model (the oldest forgotten first, and counted), with the number of output values it
answered: reusing it is refused (409), and feedback for it must carry that many
values (400 naming the item). Server-chosen ids are random UUIDs and are not kept (no key per request). When the
state store cannot be reached, requests are served and feedback accepted unchecked, and counted: the detector still
never overwrites a stored prediction and counts ground truth of the wrong size.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from mitiga_core.errors import Conflict, InvalidInput

if TYPE_CHECKING:
    from collections.abc import Sequence

    from mitiga_core.state import StateStore
    from mitiga_inference.metrics import InferenceMetrics

log = logging.getLogger(__name__)


def _key(model: str, request_id: str) -> str:
    return f"mitiga:request-id:{model}:{request_id}"


class RequestIds:
    def __init__(self, state: StateStore, ttl_s: float, metrics: InferenceMetrics, max_items: int = 200_000) -> None:
        self._state = state
        self._ttl_s = ttl_s
        self._metrics = metrics
        self._max_items = max_items

    def reserve(self, model: str, request_id: str, outputs: int) -> str | None:
        """Keep a client-chosen ``request_id`` for ``model``, or refuse it with 409 when it is kept already.
        Returns the key to release if the request is not answered after all."""
        key = _key(model, request_id)
        try:
            done = self._state.set_bounded(f"mitiga:request-id-index:{model}", {key: str(outputs).encode()},
                                           ttl_s=self._ttl_s, max_items=self._max_items)
        except Exception:  # serving goes on; the miss is counted
            self._metrics.unchecked_ids.labels(model).inc()
            return None
        if done.evicted:
            self._metrics.evicted_ids.labels(model).inc(len(done.evicted))
        if done.refused:
            raise Conflict(f"id: request id {request_id!r} was already used for model {model!r}; "
                           "ids are unique per model (omit id to have the server choose one)")
        return key

    def release(self, key: str) -> None:
        try:
            self._state.delete(key)
        except Exception:  # it expires with its TTL
            log.warning("request id not released", extra={"key": key})

    def check_feedback(self, model: str, items: Sequence[tuple[str, int]]) -> None:
        """400 for an item (its request id and how many values of ground truth it has) that does not fit the
        request it is sent for: a value per output and row for a regression, a class per row for a classifier."""
        for i, (request_id, count) in enumerate(items):
            try:
                kept = self._state.get(_key(model, request_id))
            except Exception:
                self._metrics.unchecked_ids.labels(model).inc()
                return
            if kept is not None and kept.isdigit() and int(kept) != count:
                raise InvalidInput(f"items[{i}].ground_truth: {count} values for request {request_id!r}, which "
                                   f"takes {int(kept)} (one per row and output; a class per row for a classifier)")
