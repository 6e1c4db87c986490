"""Rolling a promoted version out with Helm: ``helm upgrade --atomic --wait --reuse-values`` of the release,
setting that model's version. ``--atomic`` makes Helm roll the release back itself when the inference pods do not
become ready in time; the caller then restores the previous champion and reports the failure."""

from __future__ import annotations

import logging
import subprocess
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mitiga_retrainer.settings import RetrainerSettings

log = logging.getLogger(__name__)


class RolloutFailed(Exception):
    """The Helm upgrade failed (and was rolled back)."""


def helm_command(settings: RetrainerSettings, model: str, version: str) -> list[str]:
    if not settings.helm_release:
        raise RolloutFailed("MITIGA_HELM_RELEASE is not set")
    return [settings.helm_binary, "upgrade", settings.helm_release, settings.helm_chart,
            "--namespace", settings.helm_namespace, "--atomic", "--wait", "--timeout", settings.helm_timeout,
            "--reuse-values", "--set-string", f"models.{model}.version={version}", *settings.helm_extra_args]


def helm_upgrade(settings: RetrainerSettings, model: str, version: str) -> None:
    """Roll ``version`` of ``model`` out; raises RolloutFailed with Helm's message."""
    command = helm_command(settings, model, version)
    log.info("helm upgrade", extra={"model": model, "version": version, "release": settings.helm_release})
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False,  # noqa: S603
                              timeout=settings.helm_deadline_s)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RolloutFailed(f"helm upgrade could not run: {exc}") from exc
    if done.returncode != 0:
        message = (done.stderr or done.stdout).strip()[-2000:]
        log.error("helm upgrade failed and was rolled back", extra={"model": model, "version": version,
                                                                    "reason": message})
        raise RolloutFailed(f"helm upgrade of {settings.helm_release} to {model} version {version} failed: {message}")
    log.info("helm upgrade done", extra={"model": model, "version": version})
