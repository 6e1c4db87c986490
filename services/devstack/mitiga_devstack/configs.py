"""Configuration files of the development stack's Prometheus and Alertmanager."""

from __future__ import annotations

from typing import TYPE_CHECKING

import yaml

from mitiga_devstack.process import REPO

if TYPE_CHECKING:
    from pathlib import Path

ALERTMANAGER = REPO / "manifests" / "alertmanager" / "alertmanager.yml"


def prometheus_config(path: Path, *, rules: Path, alertmanager: str, targets: dict[str, str],
                      interval: str = "5s") -> Path:
    """``targets``: job name -> ``host:port`` of a service's ``/metrics``."""
    config = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(rules)],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]},
        "scrape_configs": [{"job_name": job, "static_configs": [{"targets": [target]}]}
                           for job, target in targets.items()],
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def alertmanager_config(path: Path, *, webhook_url: str, group_wait: str = "30s", group_interval: str = "5m",
                        repeat_interval: str = "4h") -> Path:
    """``manifests/alertmanager/alertmanager.yml`` (routes, inhibition; Slack and e-mail examples in its comments)
    with the webhook URL and timings of this stack."""
    config = yaml.safe_load(ALERTMANAGER.read_text())
    config["route"].update(group_wait=group_wait, group_interval=group_interval, repeat_interval=repeat_interval)
    [receiver] = [r for r in config["receivers"] if r["name"] == "webhook"]
    receiver["webhook_configs"][0]["url"] = webhook_url
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path
