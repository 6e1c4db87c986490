"""State store: the interface and its in-process implementation and the Redis one (imported on use)."""

from mitiga_core.state.base import Bounded, StateStore, Write
from mitiga_core.state.memory import InMemoryStateStore
from mitiga_core.state.staged import StagedWrites

__all__ = ["Bounded", "InMemoryStateStore", "StagedWrites", "StateStore", "Write"]
