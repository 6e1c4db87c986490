"""Rolling a promoted version out with Helm: ``helm upgrade --atomic --wait --reuse-values`` of the release,
setting that model's version. ``--atomic`` (``--rollback-on-failure`` in Helm 4) makes Helm roll the release back
itself when the inference pods do not become ready in time; the caller keeps the previous champion and reports the
failure. Helm 3 and 4 both work (``docs/compatibility.md``).

A retrainer killed in the middle of an upgrade leaves the release ``pending-upgrade`` (or ``pending-install`` /
``pending-rollback``), which refuses every later upgrade. The next run repairs it first: ``helm rollback`` to the
last deployed revision, so what is served and what the store names as champion agree again.

Helm runs with ``HELM_DRIVER`` from the settings (the release's records in ConfigMaps by default: the retrainer's
account may not read Secrets) and ``--no-hooks``: the chart's hook creates the token Secret, an operator's job."""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import subprocess
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mitiga_retrainer.settings import RetrainerSettings

log = logging.getLogger(__name__)


class RolloutFailed(Exception):
    """The Helm upgrade failed (and was rolled back)."""


@functools.cache
def helm_major(binary: str) -> int:
    """The major version of the Helm at ``binary`` (3 when it cannot tell): Helm 4 renamed ``--atomic`` to
    ``--rollback-on-failure`` (the old name still works there, deprecated, with a warning)."""
    try:
        done = subprocess.run([binary, "version", "--template", "{{.Version}}"],  # noqa: S603
                              capture_output=True, text=True, check=False, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return 3
    match = re.match(r"v(\d+)\.", done.stdout.strip())
    return int(match.group(1)) if match else 3


HELM4_UPGRADE = ["--rollback-on-failure", "--server-side=false"]
"""Helm 4's upgrade applies every object of the release server-side, patching those that did not change too, which
the retrainer's Role does not allow (it may patch only what a version change touches): the client-side three-way
merge patches only what changed, as Helm 3 does."""


def wait_flag(settings: RetrainerSettings) -> str:
    """Helm 4's default wait (``watcher``) lists every kind the release holds, cluster-scoped admission policies
    among them, which the retrainer may not: ``legacy`` waits on the workloads as Helm 3 does."""
    return "--wait=legacy" if helm_major(settings.helm_binary) >= 4 else "--wait"


def helm_command(settings: RetrainerSettings, model: str, version: str) -> list[str]:
    if not settings.helm_release:
        raise RolloutFailed("MITIGA_HELM_RELEASE is not set")
    helm4 = helm_major(settings.helm_binary) >= 4
    return [settings.helm_binary, "upgrade", settings.helm_release, settings.helm_chart,
            "--namespace", settings.helm_namespace, *(HELM4_UPGRADE if helm4 else ["--atomic"]),
            wait_flag(settings), "--timeout", settings.helm_timeout,
            "--reuse-values", "--no-hooks", "--set-string", f"models.{model}.version={version}",
            *settings.helm_extra_args]


def helm_env(settings: RetrainerSettings) -> dict[str, str]:
    return {**os.environ, "HELM_DRIVER": settings.helm_driver}


def _connection_args(settings: RetrainerSettings) -> list[str]:
    """The ``--kube*`` flags of ``helm_extra_args`` (how to reach the cluster), which every helm command takes."""
    out, args = [], settings.helm_extra_args
    for i, arg in enumerate(args):
        if arg.startswith("--kube"):
            out.append(arg)
            if "=" not in arg and i + 1 < len(args):
                out.append(args[i + 1])
    return out


def _helm(settings: RetrainerSettings, *args: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run([settings.helm_binary, *args, "--namespace", settings.helm_namespace,  # noqa: S603
                               *_connection_args(settings)], capture_output=True, text=True, check=False,
                              timeout=settings.helm_deadline_s, env=helm_env(settings))
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RolloutFailed(f"helm {args[0]} could not run: {exc}") from exc


def repair_pending(settings: RetrainerSettings) -> str | None:
    """Roll a release left pending by an interrupted operation back to its last deployed revision; returns the
    status it repaired, or None when there was nothing to repair."""
    done = _helm(settings, "status", settings.helm_release, "-o", "json")
    if done.returncode != 0:
        if "not found" in done.stderr or "forbidden" in done.stderr:  # none there, or no right to look there
            raise RolloutFailed(
                f"release {settings.helm_release} not found in Helm's {settings.helm_driver} storage of namespace "
                f"{settings.helm_namespace} ({done.stderr.strip()[-300:]}): install the chart with "
                f"HELM_DRIVER={settings.helm_driver}, or set retrainer.rollout.helmDriver to the driver it was "
                "installed with")
        return None  # the upgrade will say what is wrong
    status = str(json.loads(done.stdout).get("info", {}).get("status", ""))
    if not status.startswith("pending-"):
        return None
    log.warning("helm release left pending: rolling back", extra={"release": settings.helm_release, "status": status})
    rolled = _helm(settings, "rollback", settings.helm_release, wait_flag(settings), "--timeout", settings.helm_timeout)
    if rolled.returncode != 0:
        raise RolloutFailed(f"the release {settings.helm_release} was left {status} and could not be rolled back: "
                            f"{(rolled.stderr or rolled.stdout).strip()[-1000:]}")
    return status


def helm_upgrade(settings: RetrainerSettings, model: str, version: str) -> None:
    """Roll ``version`` of ``model`` out; raises RolloutFailed with Helm's message."""
    command = helm_command(settings, model, version)
    repair_pending(settings)
    log.info("helm upgrade", extra={"model": model, "version": version, "release": settings.helm_release})
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False,  # noqa: S603
                              timeout=settings.helm_deadline_s, env=helm_env(settings))
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RolloutFailed(f"helm upgrade could not run: {exc}") from exc
    if done.returncode != 0:
        message = (done.stderr or done.stdout).strip()[-2000:]
        log.error("helm upgrade failed and was rolled back", extra={"model": model, "version": version,
                                                                    "reason": message})
        raise RolloutFailed(f"helm upgrade of {settings.helm_release} to {model} version {version} failed: {message}")
    log.info("helm upgrade done", extra={"model": model, "version": version})
