"""Two detector processes in one consumer group on real Kafka and Redis share the models; one is killed with -9
under load and the other takes its models over: nothing lost, nothing counted twice, one retrain per episode."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from typing import TYPE_CHECKING

import httpx
import numpy as np
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from mitiga_core.bus.kafka import KafkaBus
from mitiga_core.events import Topic
from mitiga_core.labelled import LabelledLog
from mitiga_core.settings import CoreSettings
from mitiga_core.state.redis import RedisStateStore
from mitiga_core.store import FilesystemModelStore
from mitiga_devstack.servers import KafkaServer, RedisServer
from mitiga_devstack.stack import ServiceProcess
from tests.detector.conftest import feedback, inference, write_bundle
from tests.devstack.conftest import decoded, metric, wait_for

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MODELS = [f"m{i}" for i in range(6)]
"""Keyed to partitions 2, 2, 1, 1, 0, 2 of three (Kafka's murmur2): both replicas hold some."""
WINDOW = 40
ROWS = 10
"""Rows per request."""


class Sender:
    """Requests of every model with their ground truth, on the bus as the inference service would publish them:
    inputs shifted by 2 sigma and predictions 5 off, so every model's error and inputs are critical."""

    def __init__(self, bootstrap: str) -> None:
        self.bus = KafkaBus(CoreSettings(kafka_bootstrap=bootstrap, service_name="test-sender"))
        self.rows = dict.fromkeys(MODELS, 0)
        self._rng = np.random.default_rng(0)

    def send(self, requests: int) -> None:
        for _ in range(requests):
            for model in MODELS:
                x = self._rng.normal(2.0, 1.0, size=(ROWS, 3)).astype(np.float32)
                request_id = f"{model}-{self.rows[model]}"
                self.bus.publish(Topic.INFERENCE, inference(x, x.sum(axis=1, keepdims=True), name=model,
                                                            request_id=request_id))
                truth = (x.sum(axis=1) + 5.0).tolist()
                self.bus.publish(Topic.FEEDBACK, feedback([(request_id, truth)], name=model))
                self.rows[model] += ROWS
        self.bus.flush()


def checkpointed_rows(client: redis.Redis, model: str) -> int:
    """Rows the model's checkpoint has seen: its closed windows and its open one."""
    raw = client.get(f"mitiga:checkpoint:mitiga-detector:monitor:{model}:1")
    if raw is None:
        return 0
    body = json.loads(raw)
    features = body["window"].get("features", [])  # packed rows (their shape), or JSON numbers written before
    return int(body["windows_seen"]) * WINDOW + (features["shape"][0] if isinstance(features, dict) else len(features))


def test_two_replicas_share_the_models_and_one_takes_over_when_the_other_is_killed(
        tmp_path: Path) -> None:
    store = FilesystemModelStore(tmp_path / "models")
    for model in MODELS:
        write_bundle(store, model)
    kafka, redis_server = KafkaServer(tmp_path / "kafka").start(), RedisServer(tmp_path / "redis").start()
    env = {"MITIGA_BUS": "kafka", "MITIGA_STATE": "redis", "MITIGA_KAFKA_BOOTSTRAP": kafka.bootstrap,
           "MITIGA_REDIS_URL": redis_server.url, "MITIGA_MODEL_STORE_PATH": str(tmp_path / "models"),
           "MITIGA_ENGINE": "scipy", "MITIGA_WINDOW_SIZE": str(WINDOW), "MITIGA_PERSISTENCE": "1",
           "MITIGA_MIN_PERFORMANCE_ROWS": "10", "MITIGA_COOLDOWN_S": "0", "MITIGA_MAX_ATTEMPTS": "1",
           "MITIGA_LAUNCHER": "none", "MITIGA_KAFKA_SESSION_TIMEOUT_S": "6", "MITIGA_LOG_LEVEL": "WARNING",
           # windows of exactly WINDOW rows (no early close on a sequential alarm), and a quick start
           "MITIGA_SEQUENTIAL": "false", "MITIGA_OUTLIERS": "false", "MITIGA_ESTIMATE_PERFORMANCE": "false"}
    first = ServiceProcess("detector-1", "mitiga_detector", tmp_path / "d1", env)
    second = ServiceProcess("detector-2", "mitiga_detector", tmp_path / "d2", env)
    sender = Sender(kafka.bootstrap)
    client = redis.Redis.from_url(redis_server.url)

    def caught_up() -> bool:
        return all(checkpointed_rows(client, m) == sender.rows[m] for m in MODELS)

    def owners(url: str) -> set[str]:
        """The models whose gauges the replica exports."""
        return {s.labels["model"] for f in text_string_to_metric_families(httpx.get(f"{url}/metrics").text)
                for s in f.samples if s.name == "mitiga_drift_window_rows"}

    try:
        first.start()
        sender.send(8)  # the first replica alone holds every model: two windows each
        wait_for(caught_up, 120, "the first replica to test every model's windows")
        assert owners(first.url) == set(MODELS)
        second.start()
        wait_for(lambda: sender.send(1) or metric(second.url, "mitiga_detector_events_total", type="InferenceEvent"),
                 120, "the second replica to be given models (it joins the group)", every_s=2)
        sender.send(8)
        wait_for(caught_up, 120, "both replicas to test the new windows")
        held_by_second = wait_for(lambda: owners(second.url), 60, "the second replica's gauges")
        # each replica exports only the models it holds: the first dropped what it handed over
        assert held_by_second and held_by_second < set(MODELS)
        assert owners(first.url) == set(MODELS) - held_by_second
        stop = threading.Event()

        def load() -> None:
            while not stop.wait(0.1):
                sender.send(1)

        worker = threading.Thread(target=load)
        worker.start()
        try:
            time.sleep(3)
            os.killpg(second.pid, signal.SIGKILL)  # mid-stream: its last batch handled, perhaps not committed
            second.proc.wait()
            second.proc = None
            time.sleep(8)  # past the session timeout: the group gives its partitions to the first
        finally:
            stop.set()
            worker.join()
        wait_for(caught_up, 180, "the first replica to take the killed one's models over")
        assert owners(first.url) == set(MODELS)
        labelled = LabelledLog(RedisStateStore(redis_server.url))
        for model in MODELS:  # every labelled row once: none lost in the kill, none doubled by the redelivery
            data = labelled.read(model)
            assert data is not None and len(data.x) == sender.rows[model], model
        requests = decoded(kafka.bootstrap, Topic.RETRAIN)
        assert sorted(r.model_name for r in requests) == MODELS  # one retrain per model's one episode
        assert len({r.episode_id for r in requests}) == len(MODELS)
    finally:
        client.close()
        sender.bus.close()
        for server in (second, first, kafka, redis_server):
            server.stop()
