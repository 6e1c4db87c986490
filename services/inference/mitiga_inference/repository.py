"""Which versions of each model are loaded, and hot swaps between them.

Each model has a current version, which the unversioned routes serve (the champion unless pinned), and may have
others loaded beside it for their versioned routes (``load_beside``), up to ``max_loaded_versions`` in all.
A new version is loaded, compiled and warmed on a worker thread, then switched in by one assignment.
Requests hold the version they started on (``acquire``/``release``); a version is closed only when the last of
them has finished, so a swap fails no request.

With a memory budget (``mitiga_inference.budget``) a registered model loads on its first request (the request waits
for it, as do the ones that come meanwhile) and the least recently used models are unloaded past the budget.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mitiga_core.errors import Conflict, MitigaError, ModelNotFound, ModelNotReady
from mitiga_inference.batching import MicroBatcher
from mitiga_inference.budget import MemoryBudget, resident_bytes, trim
from mitiga_inference.runtime import CompiledModel, LoadedModel

if TYPE_CHECKING:
    from mitiga_core.store import ModelStore
    from mitiga_inference.metrics import InferenceMetrics
    from mitiga_inference.settings import InferenceSettings

log = logging.getLogger(__name__)


@dataclass
class _Slot:
    current: LoadedModel | None = None
    beside: dict[str, LoadedModel] = field(default_factory=dict)
    """Versions loaded beside the current one, for their versioned routes only."""
    state: str = "UNAVAILABLE"
    reason: str = ""
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def loaded(self, version: str) -> LoadedModel | None:
        if self.current is not None and self.current.version == version:
            return self.current
        return self.beside.get(version)


class ModelRepository:
    def __init__(self, store: ModelStore, settings: InferenceSettings, metrics: InferenceMetrics) -> None:
        self._store = store
        self._settings = settings
        self._metrics = metrics
        self._slots: dict[str, _Slot] = {}
        self._retiring: set[asyncio.Task[None]] = set()
        limit = settings.model_memory_budget
        self.budget = None if limit is None else MemoryBudget(int(limit), [*settings.models, *settings.model_versions])
        self._loading = asyncio.Lock()
        """Under a budget, one load at a time: its cost is the resident memory it adds."""
        self._runtime_warm = False
        if self.budget is not None:
            metrics.budget_bytes.set(self.budget.limit)

    # --- lookups (request path) ---
    def acquire(self, name: str, version: str | None = None) -> LoadedModel:
        """The loaded model for a request, marked in flight. Pair with :meth:`LoadedModel.release`."""
        slot = self._slots.get(name)
        loaded = slot.current if slot else None
        if loaded is None:
            if name in self._slots or self._store.list_versions(name):
                raise ModelNotReady(f"model {name!r} is not loaded")
            raise ModelNotFound(f"model {name!r} not found")
        if version is not None and version != loaded.version:
            assert slot is not None
            found = slot.beside.get(version)
            if found is None:
                if version in self._store.list_versions(name):
                    raise ModelNotFound(f"version {version!r} of model {name!r} is not loaded (serving "
                                        f"{sorted([loaded.version, *slot.beside])}); load it beside the others with "
                                        f"POST /v2/repository/models/{name}/versions/{version}/load")
                raise ModelNotFound(f"model {name!r} has no version {version!r}")
            loaded = found
        loaded.acquire()
        if self.budget is not None:
            self.budget.touch(name)
        return loaded

    def loadable(self, name: str, version: str | None) -> bool:
        """Under a budget: a registered model, not loaded, whose last load did not fail (a request would load its
        champion)."""
        if self.budget is None or version is not None or self.peek(name) is not None:
            return False
        slot = self._slots.get(name)
        failed = slot is not None and slot.state == "UNAVAILABLE" and slot.reason.startswith("load failed")
        return not failed and bool(self._store.list_versions(name))

    def peek(self, name: str) -> LoadedModel | None:
        slot = self._slots.get(name)
        return slot.current if slot else None

    def loaded(self) -> list[LoadedModel]:
        """Every loaded version of every model."""
        return [m for s in self._slots.values() for m in ([s.current] if s.current else []) + list(s.beside.values())]

    def index(self) -> list[dict[str, str]]:
        """The model repository index: every stored model with its state."""
        rows = []
        for name in sorted(set(self._store.list_models()) | set(self._slots)):
            slot = self._slots.get(name)
            current = slot.current if slot else None
            rows.append({
                "name": name,
                "version": current.version if current else (self._store.champion(name) or ""),
                "state": slot.state if slot else "UNAVAILABLE",
                "reason": slot.reason if slot else "loads on its first request" if self.budget else "",
            })
            rows += [{"name": name, "version": version, "state": "READY", "reason": "loaded beside the current one"}
                     for version in sorted(slot.beside)] if slot else []
        return rows

    # --- loading and swapping ---
    def _check_version(self, name: str, version: str | None) -> str:
        versions = self._store.list_versions(name)
        if not versions:
            raise ModelNotFound(f"model {name!r} not found")
        version = version or self._store.champion(name) or versions[-1]
        if version not in versions:
            raise ModelNotFound(f"model {name!r} has no version {version!r}")
        return version

    def _build(self, name: str, version: str) -> LoadedModel:
        # TensorFlow never frees an XLA compilation (2 MB for a small dense model, 18 for the LSTM): a model that may
        # be unloaded (under a budget, any but a pinned one) runs on the graph function alone, freed with it
        xla = self._settings.xla_max_rows if self.budget is None or name in self.budget.pinned else 0
        compiled = CompiledModel(self._store.path(name, version), xla_max_rows=xla)
        compiled.warm_up(self._settings.max_batch_rows)
        observe = self._metrics.batch_rows.labels(name, version).observe
        batcher = MicroBatcher(compiled, max_rows=self._settings.max_batch_rows,
                               max_wait_s=self._settings.max_batch_wait_ms / 1000, on_batch=observe,
                               max_queued_rows=self._settings.max_queued_rows,
                               concurrency=self._settings.model_concurrency,
                               parallel_min_rows=max(1, self._settings.xla_max_rows))
        self._metrics.memory.labels(name, version).set(compiled.weight_bytes)
        return LoadedModel(compiled, batcher)

    async def _load_new(self, name: str, version: str, trigger: str) -> LoadedModel:
        """Build ``version`` on a worker thread, counted and timed; under a budget, alone, its cost measured."""
        async with self._loading if self.budget is not None else contextlib.nullcontext():
            if self.budget is not None:
                if not self._runtime_warm:  # the first load also sets up TensorFlow's runtime: charged to no model
                    await asyncio.to_thread(self._build, name, version)
                    self._runtime_warm = True
                trim()
            started, before = time.perf_counter(), resident_bytes()
            new = await asyncio.to_thread(self._build, name, version)
            new.cost = max(new.compiled.weight_bytes, resident_bytes() - before)
        self._metrics.loads.labels(trigger).inc()
        self._metrics.load_seconds.labels(trigger).observe(time.perf_counter() - started)
        new.batcher.start()
        return new

    def _account(self, name: str) -> None:
        """The budget's view of ``name`` after a load or an unload; then unload past the budget."""
        if self.budget is None:
            return
        slot = self._slots[name]
        versions = [m for m in [slot.current, *slot.beside.values()] if m is not None]
        if versions:
            self.budget.loaded(name, sum(m.cost for m in versions))
        else:
            self.budget.unloaded(name)
        for victim in self.budget.victims(name, lambda n: not self._slots[n].beside):
            self._evict(victim)
        self._metrics.loaded_models.set(self.budget.count)
        self._metrics.loaded_bytes.set(self.budget.used)
        if self.budget.used > self.budget.limit:
            log.warning("models over the memory budget", extra={"model": name, "used": self.budget.used,
                                                                "budget": self.budget.limit})

    def _evict(self, name: str) -> None:
        slot = self._slots[name]
        old, slot.current = slot.current, None
        slot.state, slot.reason = "UNAVAILABLE", "unloaded past the memory budget; loads on its next request"
        assert self.budget is not None and old is not None
        self.budget.unloaded(name)
        self._metrics.served_version.remove(name, old.version)
        self._metrics.evictions.inc()
        self._retire(name, old)
        log.info("model unloaded past the memory budget", extra={"model": name, "version": old.version})

    async def ensure(self, name: str) -> bool:
        """Under a budget, load the champion of a registered model a request names and that is not loaded; the
        request waits for it. True when it had to wait (a cold request)."""
        if self.budget is None or self.peek(name) is not None or not self._store.list_versions(name):
            return False
        await self.load(name, trigger="request")
        return True

    async def load(self, name: str, version: str | None = None, trigger: str = "admin") -> LoadedModel:
        """Serve ``version`` (default: the champion, else the newest) on the unversioned routes. Returns once it
        serves. A version loaded beside is switched in as it is, without loading again. ``trigger`` (startup,
        request, rollout, admin) labels the load's metrics."""
        version = self._check_version(name, version)
        slot = self._slots.setdefault(name, _Slot())
        async with slot.lock:
            if slot.current is not None and slot.current.version == version:
                return slot.current
            new = slot.beside.pop(version, None)
            if new is None:
                slot.state, slot.reason = ("LOADING", f"loading version {version}")
                try:
                    new = await self._load_new(name, version, trigger)
                except MitigaError as exc:
                    slot.state, slot.reason = ("READY", "") if slot.current else ("UNAVAILABLE", f"load failed: {exc}")
                    raise
            old, slot.current = slot.current, new
            slot.state, slot.reason = "READY", ""
            self._metrics.served_version.labels(name, version).set(1)
            self._metrics.swaps.labels(name).inc()
            if old is not None:
                self._metrics.served_version.remove(name, old.version)
                self._retire(name, old)
            log.info("model serving", extra={"model": name, "version": version,
                                             "previous": old.version if old else None})
            self._account(name)
            return new

    async def load_beside(self, name: str, version: str) -> LoadedModel:
        """Load ``version`` beside the current one, for its versioned routes; 409 past ``max_loaded_versions``."""
        version = self._check_version(name, version)
        slot = self._slots.get(name)
        if slot is None or slot.current is None:
            raise ModelNotReady(f"model {name!r} is not loaded: load it first")
        async with slot.lock:
            found = slot.loaded(version)
            if found is not None:
                return found
            cap = self._settings.max_loaded_versions
            if 1 + len(slot.beside) >= cap:
                raise Conflict(f"model {name!r} has {1 + len(slot.beside)} versions loaded "
                               f"({sorted([slot.current.version, *slot.beside])}), MITIGA_MAX_LOADED_VERSIONS is "
                               f"{cap}: unload one first")
            new = await self._load_new(name, version, "admin")
            slot.beside[version] = new
            self._account(name)
            log.info("model loaded beside", extra={"model": name, "version": version})
            return new

    async def unload_beside(self, name: str, version: str) -> None:
        slot = self._slots.get(name)
        if slot is None:
            raise ModelNotFound(f"model {name!r} is not loaded")
        async with slot.lock:  # checked under the lock: of two concurrent unloads, the second is a 404
            if version not in slot.beside:
                raise ModelNotFound(f"version {version!r} of model {name!r} is not loaded beside the current one")
            self._retire(name, slot.beside.pop(version))
            self._account(name)

    def _retire(self, name: str, old: LoadedModel) -> None:
        self._metrics.memory.remove(name, old.version)
        task = asyncio.get_running_loop().create_task(old.drain_and_close())
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def unload(self, name: str) -> None:
        slot = self._slots.get(name)
        if slot is None or slot.current is None:
            raise ModelNotFound(f"model {name!r} is not loaded")
        async with slot.lock:
            old, slot.current = slot.current, None
            if old is not None:
                slot.state, slot.reason = "UNAVAILABLE", "unloaded"
                self._metrics.served_version.remove(name, old.version)
                self._retire(name, old)
            for version in list(slot.beside):
                self._retire(name, slot.beside.pop(version))
            self._account(name)

    async def close(self) -> None:
        """Drain and close every version (shutdown)."""
        for name, slot in self._slots.items():
            for loaded in [slot.current, *slot.beside.values()]:
                if loaded is not None:
                    self._retire(name, loaded)
            slot.current = None
            slot.beside.clear()
        if self._retiring:
            await asyncio.gather(*self._retiring, return_exceptions=True)
