"""The console's settings, from the environment (``MITIGA_`` prefix)."""

from __future__ import annotations

from pydantic import Field

from mitiga_core.settings import CoreSettings


class ConsoleSettings(CoreSettings):
    host: str = "0.0.0.0"  # noqa: S104 - a container listens on all interfaces
    port: int = Field(default=8090, ge=0, le=65535)
    inference_url: str = "http://127.0.0.1:8080"
    """The inference service: forecasts and uploads go through its REST API."""
    detector_url: str = "http://127.0.0.1:8081"
    """The detector: drift state, its report, retraining and its progress."""
    alertmanager_url: str | None = None
    """Alertmanager's base URL; without it the console shows no alerts (and says so)."""
    prometheus_url: str | None = None
    """Prometheus' base URL; with it a model's health over time is read from Prometheus (it outlives detector
    restarts and covers every replica), without it from the detector's recent windows."""
    health_range_s: float = Field(default=6 * 3600.0, gt=0)
    """How far back a model's health over time reaches when read from Prometheus."""
    max_upload_bytes: int = Field(default=512 * 1024 * 1024, ge=1024)
    """The largest model file the upload form forwards."""
    secure_cookie: bool = False
    """Mark the admin-token cookie ``Secure`` (set it when the console is served over HTTPS)."""
    upstream_timeout_s: float = Field(default=10.0, gt=0)
    service_name: str = "mitiga-console"
