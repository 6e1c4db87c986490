"""The chart's token Secret, created once inside the cluster: ``python -m mitiga_core.token_secret``.

The chart's pre-install hook runs this (in the detector's image) so that no token is ever rendered by Helm: a Secret
in the rendered release would be stored in Helm's release record, which the retrainer must read to upgrade the
release (``docs/security.md``). Random tokens are made here, the Secret is created if absent, a required key it lacks
is added, and a token already there is never changed (a re-run, an upgrade, a re-install keep them)."""

from __future__ import annotations

import json
import logging
import secrets
from base64 import b64encode
from typing import Any

from pydantic_settings import BaseSettings, SettingsConfigDict

log = logging.getLogger(__name__)
TOKEN_BYTES = 30  # 40 characters of URL-safe base64, as the chart's tokens always were


class TokenSecretSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MITIGA_TOKENS_", extra="ignore")

    secret: str
    """The Secret's name (the chart's ``<release>-mitiga-admin``)."""
    namespace: str
    keys: list[str] = ["admin-token"]
    """The keys it must hold (``feedback-token`` too while the chart requires the feedback token)."""
    labels: dict[str, str] = {}


def _encoded(token: str) -> str:
    return b64encode(token.encode()).decode()


def ensure_tokens(api: Any, namespace: str, name: str, keys: list[str],
                  labels: dict[str, str] | None = None) -> list[str]:
    """Create the Secret with a random token per key, or add the keys it lacks; returns the keys it added."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    core: Any = client.CoreV1Api(api)  # answers read as plain JSON, as the launcher does
    try:
        existing = json.loads(core.read_namespaced_secret(name, namespace, _preload_content=False).data)
    except ApiException as exc:
        if exc.status != 404:
            raise
        body = {"metadata": {"name": name, "labels": labels or {}}, "type": "Opaque",
                "data": {key: _encoded(secrets.token_urlsafe(TOKEN_BYTES)) for key in keys}}
        core.create_namespaced_secret(namespace, body, _preload_content=False)
        return list(keys)
    missing = [key for key in keys if key not in (existing.get("data") or {})]
    if missing:
        patch = {"data": {key: _encoded(secrets.token_urlsafe(TOKEN_BYTES)) for key in missing}}
        core.patch_namespaced_secret(name, namespace, patch, _preload_content=False)
    return missing


def main() -> None:
    from kubernetes import client, config

    from mitiga_core.logging import configure_logging

    configure_logging("token-secret")
    settings = TokenSecretSettings()  # type: ignore[call-arg]
    config.load_incluster_config()
    added = ensure_tokens(client.ApiClient(), settings.namespace, settings.secret, settings.keys, settings.labels)
    log.info("token secret ready", extra={"secret": settings.secret, "added": added})


if __name__ == "__main__":
    main()
