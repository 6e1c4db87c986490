"""State store: the interface and its in-process implementation and the Redis one (imported on use)."""

from mitiga_core.state.base import StateStore, Write
from mitiga_core.state.memory import InMemoryStateStore
from mitiga_core.state.staged import StagedWrites

__all__ = ["InMemoryStateStore", "StagedWrites", "StateStore", "Write"]
