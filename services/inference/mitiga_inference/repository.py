"""Which version of each model is loaded, and hot swaps between versions.

A new version is loaded, compiled and warmed on a worker thread, then switched in by one assignment.
Requests hold the version they started on (``acquire``/``release``); the old version is closed only
when the last of them has finished, so a swap fails no request.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mitiga_core.errors import MitigaError, ModelNotFound, ModelNotReady
from mitiga_inference.batching import MicroBatcher
from mitiga_inference.runtime import CompiledModel, LoadedModel

if TYPE_CHECKING:
    from mitiga_core.store import ModelStore
    from mitiga_inference.metrics import InferenceMetrics
    from mitiga_inference.settings import InferenceSettings

log = logging.getLogger(__name__)


@dataclass
class _Slot:
    current: LoadedModel | None = None
    state: str = "UNAVAILABLE"
    reason: str = ""
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class ModelRepository:
    def __init__(self, store: ModelStore, settings: InferenceSettings, metrics: InferenceMetrics) -> None:
        self._store = store
        self._settings = settings
        self._metrics = metrics
        self._slots: dict[str, _Slot] = {}
        self._retiring: set[asyncio.Task[None]] = set()

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
            if version in self._store.list_versions(name):
                raise ModelNotFound(f"version {version!r} of model {name!r} is not loaded (serving {loaded.version!r})")
            raise ModelNotFound(f"model {name!r} has no version {version!r}")
        loaded.acquire()
        return loaded

    def peek(self, name: str) -> LoadedModel | None:
        slot = self._slots.get(name)
        return slot.current if slot else None

    def loaded(self) -> list[LoadedModel]:
        return [s.current for s in self._slots.values() if s.current is not None]

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
                "reason": slot.reason if slot else "",
            })
        return rows

    # --- loading and swapping ---
    def _build(self, name: str, version: str) -> LoadedModel:
        compiled = CompiledModel(self._store.path(name, version), xla_max_rows=self._settings.xla_max_rows)
        compiled.warm_up(self._settings.max_batch_rows)
        observe = self._metrics.batch_rows.labels(name, version).observe
        batcher = MicroBatcher(compiled, max_rows=self._settings.max_batch_rows,
                               max_wait_s=self._settings.max_batch_wait_ms / 1000, on_batch=observe,
                               max_queued_rows=self._settings.max_queued_rows)
        return LoadedModel(compiled, batcher)

    async def load(self, name: str, version: str | None = None) -> LoadedModel:
        """Serve ``version`` (default: the champion, else the newest). Returns once it serves."""
        versions = self._store.list_versions(name)
        if not versions:
            raise ModelNotFound(f"model {name!r} not found")
        version = version or self._store.champion(name) or versions[-1]
        if version not in versions:
            raise ModelNotFound(f"model {name!r} has no version {version!r}")
        slot = self._slots.setdefault(name, _Slot())
        async with slot.lock:
            if slot.current is not None and slot.current.version == version:
                return slot.current
            slot.state, slot.reason = ("LOADING", f"loading version {version}")
            try:
                new = await asyncio.to_thread(self._build, name, version)
            except MitigaError as exc:
                slot.state, slot.reason = ("READY", "") if slot.current else ("UNAVAILABLE", str(exc))
                raise
            new.batcher.start()
            old, slot.current = slot.current, new
            slot.state, slot.reason = "READY", ""
            self._metrics.served_version.labels(name, version).set(1)
            self._metrics.swaps.labels(name).inc()
            if old is not None:
                self._metrics.served_version.remove(name, old.version)
                self._retire(old)
            log.info("model serving", extra={"model": name, "version": version,
                                             "previous": old.version if old else None})
            return new

    def _retire(self, old: LoadedModel) -> None:
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
                self._retire(old)

    async def close(self) -> None:
        """Drain and close every version (shutdown)."""
        for slot in self._slots.values():
            if slot.current is not None:
                self._retire(slot.current)
                slot.current = None
        if self._retiring:
            await asyncio.gather(*self._retiring, return_exceptions=True)
