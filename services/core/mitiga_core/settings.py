"""Settings shared by every service, read from ``MITIGA_*`` environment variables.

Each service extends :class:`CoreSettings` with its own fields in its own ``settings`` module.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class CoreSettings(BaseSettings):
    """Adapters and logging, common to all services."""

    model_config = SettingsConfigDict(env_prefix="MITIGA_", extra="ignore")

    # --- adapters ---
    bus: Literal["memory", "kafka"] = "memory"
    """Message bus implementation: ``memory`` (embedded, one process) or ``kafka``."""

    state: Literal["memory", "redis"] = "memory"
    """State store implementation: ``memory`` (in-process) or ``redis``."""

    model_store_path: Path = Path("var/models")
    """Root folder of the filesystem model store (a shared volume in Kubernetes)."""

    kafka_bootstrap: str = "127.0.0.1:9092"
    """Kafka bootstrap servers, comma separated (used when ``bus=kafka``)."""

    redis_url: str = "redis://127.0.0.1:6379/0"
    """Redis URL (used when ``state=redis``)."""

    # --- logging ---
    log_level: str = "INFO"
    """Root log level."""

    service_name: str = Field(default="mitiga")
    """Name used as the CloudEvents ``source`` and in log lines."""
