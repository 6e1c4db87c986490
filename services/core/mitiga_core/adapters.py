"""Builds the adapter implementations that the settings select: embedded (one process) or real (Kafka, Redis)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mitiga_core.bus import Bus, InMemoryBus
from mitiga_core.state import InMemoryStateStore, StateStore
from mitiga_core.store import FilesystemModelStore, ModelStore

if TYPE_CHECKING:
    from mitiga_core.settings import CoreSettings


def build_bus(settings: CoreSettings) -> Bus:
    if settings.bus == "memory":
        return InMemoryBus()
    from mitiga_core.bus.kafka import KafkaBus

    return KafkaBus(settings)


def build_state(settings: CoreSettings) -> StateStore:
    if settings.state == "memory":
        return InMemoryStateStore()
    from mitiga_core.state.redis import RedisStateStore

    return RedisStateStore(settings.redis_url, settings.redis_retry_s)


def build_model_store(settings: CoreSettings, state: StateStore | None = None) -> ModelStore:
    """The filesystem store; with Redis state, its champion pointers are cached there (the store stays the truth)."""
    store = FilesystemModelStore(settings.model_store_path)
    if state is None or settings.state == "memory":
        return store
    from mitiga_core.store.cached import ChampionCachedStore

    return ChampionCachedStore(store, state, settings.champion_cache_ttl_s)
