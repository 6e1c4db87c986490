"""The multi-process stack: Kafka, Redis, Prometheus, Alertmanager (with a webhook receiver), and the inference
and detector services as separate processes talking over Kafka and Redis. The detector starts retrainer jobs as
local subprocesses. Used by ``make up`` / ``make down`` and by the integration tests.
"""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING, Any
from urllib.error import URLError
from urllib.request import urlopen

from mitiga_devstack.alerts import AlertSettings, render
from mitiga_devstack.configs import alertmanager_config, prometheus_config
from mitiga_devstack.process import ServerProcess, free_port, preferred_port, stop_pid
from mitiga_devstack.servers import AlertmanagerServer, KafkaServer, PrometheusServer, RedisServer

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from mitiga_devstack.webhook import WebhookReceiver


class ServiceProcess(ServerProcess):
    """A mitiga service run as ``python -m <module>`` with ``MITIGA_*`` settings in its environment."""

    start_timeout_s = 180.0

    def __init__(self, name: str, module: str, data_dir: Path, env: dict[str, str], port: int | None = None) -> None:
        super().__init__(data_dir, port)
        self.name = name
        self.module = module
        self.env = {**env, "MITIGA_PORT": str(self.port), "MITIGA_HOST": "127.0.0.1"}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> Sequence[str]:
        return [sys.executable, "-m", self.module]

    def environment(self) -> dict[str, str]:
        return {**os.environ, **self.env}

    def ready(self) -> bool:
        try:
            with urlopen(f"{self.url}/v2/health/ready", timeout=1) as response:  # noqa: S310 - loopback
                return bool(response.status == 200)
        except (URLError, OSError):
            return False


class WebhookProcess(ServerProcess):
    """The webhook receiver as a process; notifications go to ``alerts.jsonl`` in its folder."""

    name = "webhook"

    def command(self) -> Sequence[str]:
        return [sys.executable, "-m", "mitiga_devstack.webhook", "--port", str(self.port),
                "--out", str(self.data_dir / "alerts.jsonl")]


class DevStack:
    def __init__(self, root: Path, model_store: Path, *, admin_token: str = "dev-admin-token",  # noqa: S107
                 feedback_token: str | None = None, detector_env: dict[str, str] | None = None,
                 inference_env: dict[str, str] | None = None,
                 alerts: AlertSettings | None = None, interval: str = "5s", group_wait: str = "30s",
                 webhook: WebhookReceiver | None = None, webhook_url: str | None = None,
                 monitoring: bool = True, well_known_ports: bool = False, console: bool = False) -> None:
        self.root = root
        self.model_store = model_store
        self.admin_token = admin_token
        self.feedback_token = feedback_token
        port = preferred_port if well_known_ports else (lambda _: free_port())
        self.kafka = KafkaServer(root / "kafka", port(9092))
        self.redis = RedisServer(root / "redis", port(6379))
        self.webhook = webhook
        self._extra: list[ServerProcess] = []
        self.monitoring = monitoring
        self.webhook_url = webhook_url or (webhook.url if webhook else f"http://127.0.0.1:{port(9095)}/alerts")
        base = {"MITIGA_BUS": "kafka", "MITIGA_STATE": "redis", "MITIGA_KAFKA_BOOTSTRAP": self.kafka.bootstrap,
                "MITIGA_REDIS_URL": self.redis.url, "MITIGA_MODEL_STORE_PATH": str(model_store),
                "MITIGA_ADMIN_TOKEN": admin_token, "TF_CPP_MIN_LOG_LEVEL": "2"}
        self.inference_grpc = f"127.0.0.1:{port(8082)}"
        self.inference = ServiceProcess("inference", "mitiga_inference", root / "inference",
                                        {**base, "MITIGA_GRPC_PORT": self.inference_grpc.rsplit(":", 1)[1],
                                         **({"MITIGA_FEEDBACK_TOKEN": feedback_token} if feedback_token else {}),
                                         **(inference_env or {})}, port(8080))
        self.detector = ServiceProcess("detector", "mitiga_detector", root / "detector",
                                       {**base, **(detector_env or {})}, port(8081))
        self.alertmanager_port, prometheus_port = port(9093), port(9090)
        self.console = ServiceProcess("console", "mitiga_console", root / "console", {
            "MITIGA_MODEL_STORE_PATH": str(model_store), "MITIGA_INFERENCE_URL": self.inference.url,
            "MITIGA_DETECTOR_URL": self.detector.url,
            **({"MITIGA_ALERTMANAGER_URL": f"http://127.0.0.1:{self.alertmanager_port}",
                "MITIGA_PROMETHEUS_URL": f"http://127.0.0.1:{prometheus_port}"} if monitoring else {})},
            port(8090)) if console else None
        rules = root / "prometheus-rules.yaml"
        rules.write_text(render(alerts))
        self.alertmanager = AlertmanagerServer(root / "alertmanager", root / "alertmanager.yml", self.alertmanager_port)
        alertmanager_config(self.alertmanager.config, webhook_url=self.webhook_url, group_wait=group_wait,
                            group_interval="5s" if group_wait != "30s" else "5m")
        self.prometheus = PrometheusServer(root / "prometheus", root / "prometheus.yml", prometheus_port)
        prometheus_config(self.prometheus.config, rules=rules, alertmanager=f"127.0.0.1:{self.alertmanager.port}",
                          targets={"mitiga-inference": f"127.0.0.1:{self.inference.port}",
                                   "mitiga-detector": f"127.0.0.1:{self.detector.port}"}, interval=interval)

    def add_webhook_process(self) -> None:
        """Receive Alertmanager's notifications in a process of their own (for ``make up``)."""
        port = int(self.webhook_url.rsplit(":", 1)[1].split("/")[0])
        self._extra.append(WebhookProcess(self.root / "webhook", port))

    @property
    def servers(self) -> list[ServerProcess]:
        """In start order."""
        monitoring = [self.alertmanager, self.prometheus] if self.monitoring else []
        console = [self.console] if self.console is not None else []
        return [*self._extra, self.kafka, self.redis, *monitoring, self.inference, self.detector, *console]

    def start(self) -> DevStack:
        if self.webhook is not None:
            self.webhook.start()
        for server in self.servers:
            server.start()
        return self

    def stop(self) -> None:
        for server in reversed(self.servers):
            server.stop()
        if self.webhook is not None:
            self.webhook.stop()

    def describe(self) -> dict[str, Any]:
        return {
            "root": str(self.root),
            "pids": {s.name: s.pid for s in self.servers if s.pid is not None},
            "urls": {"inference": self.inference.url, "inference_grpc": self.inference_grpc,
                     "detector": self.detector.url,
                     "prometheus": self.prometheus.url, "alertmanager": self.alertmanager.url,
                     "webhook": self.webhook_url, "kafka": self.kafka.bootstrap, "redis": self.redis.url,
                     **({"console": self.console.url} if self.console is not None else {})},
            "logs": {s.name: str(s.log_path) for s in self.servers},
        }

    def write_state(self, path: Path) -> None:
        path.write_text(json.dumps(self.describe(), indent=2))


def stop_from_state(path: Path) -> list[str]:
    """Stop exactly the processes a ``write_state`` file lists (newest first); returns their names."""
    if not path.exists():
        return []
    described = json.loads(path.read_text())
    stopped = [name for name, pid in reversed(list(described["pids"].items())) if stop_pid(int(pid))]
    path.unlink()
    return stopped
