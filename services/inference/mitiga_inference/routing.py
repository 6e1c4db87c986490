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
it runs as a task after it, at most ``max_shadow_in_flight`` at once (past that it is dropped and counted), and any
error is counted, not raised. Versioned routes are never rerouted.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

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
    def __init__(self, store: ModelStore, repository: ModelRepository, metrics: InferenceMetrics,
                 max_in_flight: int) -> None:
        self._store = store
        self._repo = repository
        self._metrics = metrics
        self._max_in_flight = max_in_flight
        self._routes: dict[str, Route] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def routes(self) -> dict[str, Route]:
        return dict(self._routes)

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
        """Predict ``x`` with ``version`` after the answer, and publish the prediction."""
        if len(self._tasks) >= self._max_in_flight:
            self._metrics.shadow.labels(name, version, "dropped").inc()
            return
        task = asyncio.get_running_loop().create_task(self._predict(name, version, x, publish))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _predict(self, name: str, version: str, x: FloatArray,
                       publish: Callable[[ModelManifest, FloatArray], None]) -> None:
        try:
            loaded = self._repo.acquire(name, version)
        except MitigaError:
            self._metrics.shadow.labels(name, version, "not_loaded").inc()
            return
        try:
            y = await loaded.batcher.submit(x)
            publish(loaded.manifest, y)
        except Exception:  # never the client's concern: counted
            log.warning("off-path prediction failed", extra={"model": name, "version": version}, exc_info=True)
            self._metrics.shadow.labels(name, version, "failed").inc()
            return
        finally:
            loaded.release()
        self._metrics.shadow.labels(name, version, "ok").inc()

    # --- following the store ---
    async def reconcile(self, name: str) -> None:
        """Load the model store's candidate beside the current version and route to it; end a route whose trial
        ended (unloading its candidate unless it became the current version)."""
        candidate = Candidate.of(self._store.candidate(name))
        current = self._repo.peek(name)
        old = self._routes.get(name)
        wanted = candidate if candidate is not None and current is not None \
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
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
