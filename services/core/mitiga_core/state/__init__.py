"""State store: the interface and its in-process implementation (Redis comes beside it)."""

from mitiga_core.state.base import StateStore
from mitiga_core.state.memory import InMemoryStateStore

__all__ = ["InMemoryStateStore", "StateStore"]
