"""State store: the interface and its in-process implementation and the Redis one (imported on use)."""

from mitiga_core.state.base import StateStore
from mitiga_core.state.memory import InMemoryStateStore

__all__ = ["InMemoryStateStore", "StateStore"]
