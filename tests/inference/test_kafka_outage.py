"""A Kafka outage never blocks the event loop: feedback waits for the bus in a worker thread, so inference and the
probes keep answering meanwhile, and the feedback itself gets a 503 instead of a drop."""

from __future__ import annotations

import gc
import shutil
import threading
from pathlib import Path

import httpx
import pytest

from mitiga_core.bus.kafka import KafkaBus
from mitiga_core.settings import CoreSettings
from tests.conftest import free_port
from tests.inference.conftest import start_service, window_request

# kafka-python leaves its refused sockets to the garbage collector
pytestmark = [pytest.mark.slow, pytest.mark.integration,
              pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")]


def test_while_feedback_waits_for_an_unreachable_kafka_the_service_keeps_answering(
        reference_store: Path, tmp_path: Path) -> None:
    root = tmp_path / "store"
    shutil.copytree(reference_store, root)
    bus = KafkaBus(CoreSettings(bus="kafka", kafka_bootstrap=f"127.0.0.1:{free_port()}", kafka_max_block_s=4,
                                kafka_bootstrap_timeout_s=4))
    service = start_service(root, bus=bus, publish_events=False)
    try:
        feedback: dict[str, httpx.Response] = {}

        def send() -> None:
            with httpx.Client(base_url=service.url, timeout=120) as c:
                feedback["answer"] = c.post("/v2/models/lstm/feedback",
                                            json={"request_id": "r", "ground_truth": [1.0]})

        waiting = threading.Thread(target=send)
        waiting.start()
        answered_meanwhile = []
        with service.client() as client:
            while waiting.is_alive():
                live = client.get("/v2/health/live")
                infer = client.post("/v2/models/lstm/infer", json=window_request(1))
                if waiting.is_alive():  # both answered while the feedback still waited for Kafka
                    answered_meanwhile.append((live.status_code, infer.status_code))
        waiting.join()
        assert answered_meanwhile and set(answered_meanwhile) == {(200, 200)}
        assert feedback["answer"].status_code == 503 and "retry" in feedback["answer"].json()["error"]
    finally:
        service.running.stop()
        bus.close()
        gc.collect()  # the refused sockets go now, inside this test's warning filter, not during another test
