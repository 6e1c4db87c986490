"""Live trials on the inference side: which version answers a request, and the other version's prediction made
off the request path.

A model with a candidate on trial (the model store's candidate, ``mitiga_core.promotion``) has its candidate loaded
beside the current version. Unversioned requests then go:

- **shadow**: the current version answers; the candidate predicts a copy after the answer is on its way;
- **canary**: the candidate answers ``canary_percent`` of them, chosen by a hash of the request's routing key
  (``parameters.routing_key``, else its id), so one key always meets the same version; the current version then
  predicts off the path.

Either way both predictions are published under the request's id (the one the client did not receive with
``shadow=true``), for the detector's paired comparison. The off-path prediction never delays or fails the answer:
it is queued after it and the queued rows of a version run together every ``shadow_linger_ms`` (one model call per
linger instead of one per request: on a busy CPU each call competes with the requests being answered), at most
``max_shadow_in_flight`` requests queued (past that one is dropped and counted); any error is counted, not raised.
Versioned routes are never rerouted.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from mitiga_core.errors import MitigaError
from mitiga_core.promotion import Candidate

if TYPE_CHECKING:
    from collections.abc import Callable

    from mitiga_core.bundle import ModelManifest
    from mitiga_core.store import ModelStore
    from mitiga_core.types import FloatArray
    from mitiga_inference.metrics import InferenceMetrics
    from mitiga_inference.repository import ModelRepository
    from mitiga_inference.runtime import LoadedModel

log = logging.getLogger(__name__)


_Queued = tuple["FloatArray", "Callable[[ModelManifest, FloatArray], None]"]
"""An off-path request waiting for its batch: its rows and how to publish its prediction."""


@dataclass(frozen=True)
class Route:
    candidate: str
    mode: str
    canary_percent: float


def bucket(key: str) -> float:
    """A stable position of ``key`` in [0, 100): the canary answers the keys below its percent."""
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % 10_000 / 100


class TrialRouter:
    def __init__(self, store: ModelStore, repository: ModelRepository, metrics: InferenceMetrics, *,
                 max_in_flight: int, max_bytes: int, linger_s: float, batch_rows: int) -> None:
        self._store = store
        self._repo = repository
        self._metrics = metrics
        self._max_in_flight = max_in_flight
        self._max_bytes = max_bytes
        self._linger_s = linger_s
        self._batch_rows = batch_rows
        self._routes: dict[str, Route] = {}
        self._pending: dict[tuple[str, str], list[_Queued]] = {}
        self._queued = 0
        self._queued_bytes = 0
        self._answering = 0
        self._flushing: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    # --- request path ---
    def acquire(self, name: str, key: str) -> tuple[LoadedModel, str | None]:
        """The version that answers an unversioned request (acquired), and the one to run off the path, if any."""
        route = self._routes.get(name)
        current = self._repo.acquire(name)
        if route is None or current.version == route.candidate:
            return current, None
        if route.mode == "canary" and bucket(key) < route.canary_percent:
            try:
                canary = self._repo.acquire(name, route.candidate)
            except MitigaError:  # unloaded meanwhile: the current version answers, nothing is lost
                return current, None
            current.release()
            self._metrics.trial_requests.labels(name, canary.version, "candidate").inc()
            return canary, current.version
        self._metrics.trial_requests.labels(name, current.version, "champion").inc()
        return current, route.candidate

    def off_path(self, name: str, version: str, x: FloatArray,
                 publish: Callable[[ModelManifest, FloatArray], None]) -> None:
        """Predict ``x`` with ``version`` after the answer, and publish the prediction. The off-path rows of one
        version are gathered for ``linger_s`` and run as one batch: a model call per linger, not per request."""
        if self._queued >= self._max_in_flight or self._queued_bytes + x.nbytes > self._max_bytes:
            self._metrics.shadow.labels(name, version, "dropped").inc()
            return
        key = (name, version)
        self._pending.setdefault(key, []).append((x, publish))
        self._queued += 1
        self._queued_bytes += x.nbytes
        if key not in self._flushing:
            task = asyncio.get_running_loop().create_task(self._flush(key))
            self._flushing[key] = task
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _flush(self, key: tuple[str, str]) -> None:
        await asyncio.sleep(self._linger_s)
        name, version = key
        self._flushing.pop(key, None)  # rows that come from now on start the next batch
        items = self._pending.pop(key, [])
        self._queued -= len(items)
        self._queued_bytes -= sum(x.nbytes for x, _ in items)
        try:
            loaded = self._repo.acquire(name, version)
        except MitigaError:
            self._metrics.shadow.labels(name, version, "not_loaded").inc(len(items))
            return
        try:
            for chunk in self._chunks(items):
                await self._quiet()
                try:
                    y = await loaded.batcher.submit(np.concatenate([x for x, _ in chunk]))
                    offset = 0
                    for x, publish in chunk:
                        publish(loaded.manifest, y[offset:offset + len(x)])
                        offset += len(x)
                except Exception:  # never the client's concern: counted
                    log.warning("off-path prediction failed", extra={"model": name, "version": version},
                                exc_info=True)
                    self._metrics.shadow.labels(name, version, "failed").inc(len(chunk))
                    continue
                self._metrics.shadow.labels(name, version, "ok").inc(len(chunk))
        finally:
            loaded.release()

    def answering(self, delta: int) -> None:
        """Requests being answered in this process (+1 when one starts, -1 when it ends)."""
        self._answering += delta

    async def _quiet(self, poll_s: float = 0.001) -> None:
        """Wait (at most one linger) for a moment with no request being answered: an off-path batch then rarely
        shares the CPU with one."""
        waited = 0.0
        while self._answering > 0 and waited < self._linger_s:
            await asyncio.sleep(poll_s)
            waited += poll_s

    def _chunks(self, items: list[_Queued]) -> list[list[_Queued]]:
        """Consecutive runs of the queued requests of at most ``batch_rows`` rows (a larger request alone)."""
        chunks: list[list[_Queued]] = [[]]
        rows = 0
        for item in items:
            if chunks[-1] and rows + len(item[0]) > self._batch_rows:
                chunks.append([])
                rows = 0
            chunks[-1].append(item)
            rows += len(item[0])
        return [c for c in chunks if c]

    # --- following the store ---
    async def reconcile(self, name: str) -> None:
        """Load the model store's candidate beside the current version and route to it; end a route whose trial
        ended (unloading its candidate unless it became the current version)."""
        candidate = Candidate.of(self._store.candidate(name))
        current = self._repo.peek(name)
        old = self._routes.get(name)
        wanted = candidate if candidate is not None and candidate.live and current is not None \
            and candidate.version != current.version else None
        if old is not None and (wanted is None or old.candidate != wanted.version):
            del self._routes[name]
            if current is None or old.candidate != current.version:
                with contextlib.suppress(MitigaError):  # already unloaded
                    await self._repo.unload_beside(name, old.candidate)
            log.info("live trial ended here", extra={"model": name, "version": old.candidate})
        if wanted is None or name in self._routes:
            return
        try:
            await self._repo.load_beside(name, wanted.version)
        except MitigaError as exc:
            log.error("candidate not loaded: the trial goes on without this replica", extra={
                "model": name, "version": wanted.version, "reason": str(exc)})
            return
        self._routes[name] = Route(wanted.version, wanted.mode, wanted.canary_percent)
        log.info("live trial", extra={"model": name, "version": wanted.version, "stage": wanted.mode,
                                      "canary_percent": wanted.canary_percent})

    async def close(self) -> None:
        """Wait for the off-path predictions in flight (shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
