"""Configuration files of the development stack's Prometheus and Alertmanager."""

from __future__ import annotations

from typing import TYPE_CHECKING

import yaml

if TYPE_CHECKING:
    from pathlib import Path


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
    """One webhook receiver; a critical alert silences the warning of the same model and metric. See
    ``manifests/alertmanager/alertmanager.yml`` for Slack and e-mail receivers."""
    config = {
        "route": {"receiver": "webhook", "group_by": ["alertname", "model"], "group_wait": group_wait,
                  "group_interval": group_interval, "repeat_interval": repeat_interval},
        "receivers": [{"name": "webhook", "webhook_configs": [{"url": webhook_url, "send_resolved": True}]}],
        "inhibit_rules": [{"source_matchers": ['severity="critical"', 'metric=~".+"'],
                           "target_matchers": ['severity="warning"', 'metric=~".+"'],
                           "equal": ["model", "metric"]}],
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path
