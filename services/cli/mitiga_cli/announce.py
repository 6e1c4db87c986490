"""Tells the running services that a model's champion changed outside the retrainer (a rollback).

Configured like the services (``MITIGA_BUS``, ``MITIGA_KAFKA_BOOTSTRAP``, ``MITIGA_STATE``, ``MITIGA_REDIS_URL``):
the champion pointer cached in Redis is dropped, then a ``ModelRollout`` goes to Kafka, and every inference replica
that follows the champion swaps to it. With the embedded adapters there is nobody to tell (use ``--url``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mitiga_core.adapters import build_bus, build_state
from mitiga_core.events import Topic, encode
from mitiga_core.settings import CoreSettings
from mitiga_core.store.cached import champion_key

if TYPE_CHECKING:
    from mitiga_core.pb.mitiga.v1 import events_pb2 as pb


def announce_champion(rollout: pb.ModelRollout) -> list[str]:
    """What was done, for the operator; raises when the services could not be told."""
    name = rollout.model_name
    settings = CoreSettings(service_name="mitiga-cli")
    done: list[str] = []
    if settings.state == "redis":  # before the event, so a replica that hears it reads the new pointer
        state = build_state(settings)
        try:
            state.delete(champion_key(name))
        finally:
            state.close()
        done.append("champion cache cleared")
    if settings.bus == "kafka":
        bus = build_bus(settings)
        try:
            bus.publish(Topic.ROLLOUT, encode(rollout, source=settings.service_name, key=name))
            bus.flush()
            if getattr(bus, "pending", 0):
                raise ConnectionError(f"the rollout event was not delivered to {settings.kafka_bootstrap}")
        finally:
            bus.close()
        done.append(f"announced on {Topic.ROLLOUT}")
    return done
