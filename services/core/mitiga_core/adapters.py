"""Builds the adapter implementations that the settings select."""

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
    raise NotImplementedError("the Kafka bus is not available in this build; use MITIGA_BUS=memory")


def build_state(settings: CoreSettings) -> StateStore:
    if settings.state == "memory":
        return InMemoryStateStore()
    raise NotImplementedError("the Redis state store is not available in this build; use MITIGA_STATE=memory")


def build_model_store(settings: CoreSettings) -> ModelStore:
    return FilesystemModelStore(settings.model_store_path)
