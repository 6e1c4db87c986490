"""Message bus: the interface and its embedded implementation and the Kafka one (imported on use)."""

from mitiga_core.bus.base import Bus, Consumer, Record
from mitiga_core.bus.memory import InMemoryBus

__all__ = ["Bus", "Consumer", "InMemoryBus", "Record"]
