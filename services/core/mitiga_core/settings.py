"""Settings shared by every service, read from ``MITIGA_*`` environment variables.

Each service extends :class:`CoreSettings` with its own fields in its own ``settings`` module.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class CoreSettings(BaseSettings):
    """Adapters and logging, common to all services."""

    model_config = SettingsConfigDict(env_prefix="MITIGA_", extra="ignore", use_attribute_docstrings=True)

    # --- adapters ---
    bus: Literal["memory", "kafka"] = "memory"
    """Message bus implementation: ``memory`` (embedded, one process) or ``kafka``."""

    state: Literal["memory", "redis"] = "memory"
    """State store implementation: ``memory`` (in-process) or ``redis``."""

    model_store_path: Path = Path("var/models")
    """Root folder of the filesystem model store (a shared volume in Kubernetes)."""

    kafka_bootstrap: str = "127.0.0.1:9092"
    """Kafka bootstrap servers, comma separated (used when ``bus=kafka``)."""

    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    """How to reach the brokers: in the clear, over TLS, and/or with SASL authentication."""

    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "SCRAM-SHA-512"
    """SASL mechanism (with ``SASL_*`` protocols)."""

    kafka_sasl_username: str = ""
    kafka_sasl_password: SecretStr | None = None
    """SASL credentials; keep the password in a Secret (the chart's ``config.kafkaSaslSecret``)."""

    kafka_ssl_cafile: str | None = None
    """CA bundle that signs the brokers' certificates (with ``SSL`` / ``SASL_SSL``); None: the system's."""

    kafka_bootstrap_timeout_s: float = Field(default=10.0, gt=0)
    """How long a client waits for the cluster when it connects; after that the call fails and is retried later."""

    kafka_session_timeout_s: float = Field(default=10.0, ge=6, le=300)
    """How long the broker waits for a consumer that went silent (a crashed or killed process) before it gives the
    partitions to another member, or to the restarted process: a new member waits this long to join after a crash.
    Heartbeats go every third of it from a background thread, so a long window does not count as silence.
    (kafka-python's own default is 45 s.)"""

    kafka_partitions: int = Field(default=3, ge=1)
    """Partitions of each mitiga topic when it is created (topics are keyed by model name)."""

    kafka_replication: int = Field(default=1, ge=1)
    """Replication factor of each mitiga topic when it is created."""

    kafka_linger_ms: int = Field(default=5, ge=0)
    """Producer linger: how long a batch waits for more records."""

    kafka_batch_bytes: int = Field(default=65536, ge=1024)
    """Producer batch size per partition."""

    max_message_bytes: int = Field(default=1_000_000, ge=10_000)
    """Largest bus message (Kafka's producer ``max_request_size``; keep it within the broker's ``message.max.bytes``,
    1 MB by default). Event batches are split to fit; a single event larger than this is not logged and is counted
    in ``mitiga_events_dropped_total{reason="too_large"}`` (its request is still served)."""

    kafka_max_pending: int = Field(default=200_000, ge=1)
    """Records sent but not yet acknowledged that the producer may hold. While the broker is away records wait
    (up to ``kafka_delivery_timeout_s``); past this bound a send fails and is counted."""

    kafka_delivery_timeout_s: float = Field(default=300.0, gt=0)
    """How long a record may wait for delivery before it is given up and counted as failed."""

    kafka_max_block_s: float = Field(default=1.0, gt=0)
    """How long a send may block when the producer buffer is full or metadata is missing; then it fails (counted)."""

    redis_url: str = "redis://127.0.0.1:6379/0"
    """Redis URL (used when ``state=redis``)."""

    champion_cache_ttl_s: float = Field(default=30.0, gt=0)
    """How long a champion pointer cached in Redis is trusted before the model store is read again."""

    redis_retry_s: float = Field(default=30.0, ge=0)
    """How long a state operation keeps retrying (exponential backoff) while Redis is unreachable."""

    # --- logging ---
    log_level: str = "INFO"
    """Root log level."""

    service_name: str = Field(default="mitiga")
    """Name used as the CloudEvents ``source`` and in log lines."""
