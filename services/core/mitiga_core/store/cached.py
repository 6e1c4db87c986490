"""A model store whose champion pointers are cached in the state store (Redis in production).

The wrapped store stays the source of truth: a cache miss reads it and fills the cache for ``ttl_s``;
``set_champion`` writes the store first, then the cache. A cache that cannot be reached is skipped, never fatal.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from mitiga_core.errors import Unavailable
from mitiga_core.store.base import ModelStore

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from mitiga_core.state import StateStore

log = logging.getLogger(__name__)
_NONE = b"\x00"


def champion_key(name: str) -> str:
    return f"mitiga:champion:{name}"


class ChampionCachedStore(ModelStore):
    def __init__(self, store: ModelStore, state: StateStore, ttl_s: float = 30.0) -> None:
        self._store = store
        self._state = state
        self._ttl_s = ttl_s

    def champion(self, name: str) -> str | None:
        try:
            cached = self._state.get(champion_key(name))
        except Unavailable:
            return self._store.champion(name)
        if cached is not None:
            return None if cached == _NONE else cached.decode()
        value = self._store.champion(name)
        self._fill(name, value)
        return value

    def set_champion(self, name: str, version: str) -> None:
        self._store.set_champion(name, version)
        self._fill(name, version)

    def _fill(self, name: str, value: str | None) -> None:
        try:
            self._state.set(champion_key(name), _NONE if value is None else value.encode(), ttl_s=self._ttl_s)
        except Unavailable:
            log.warning("champion cache not updated", extra={"model": name})

    # --- the rest goes straight to the store ---
    def list_models(self) -> list[str]:
        return self._store.list_models()

    def list_versions(self, name: str) -> list[str]:
        return self._store.list_versions(name)

    def write_version(self, name: str, populate: Callable[[Path, str], None]) -> str:
        return self._store.write_version(name, populate)

    def path(self, name: str, version: str) -> Path:
        return self._store.path(name, version)

    def champion_history(self, name: str) -> list[str]:
        return self._store.champion_history(name)

    def candidate(self, name: str) -> dict[str, object] | None:
        return self._store.candidate(name)

    def set_candidate(self, name: str, candidate: dict[str, object] | None) -> None:
        self._store.set_candidate(name, candidate)

    def record_decision(self, name: str, decision: dict[str, object]) -> None:
        self._store.record_decision(name, decision)

    def decisions(self, name: str) -> list[dict[str, object]]:
        return self._store.decisions(name)
