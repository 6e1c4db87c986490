"""A slow bus never slows or fails requests: events past the buffer are dropped and counted."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import pytest

from mitiga_core.bus import InMemoryBus
from mitiga_core.events import Envelope, Topic, decode_as
from mitiga_core.pb.mitiga.v1 import events_pb2 as pb
from tests.inference.conftest import start_service, window_request

pytestmark = pytest.mark.slow


class GatedBus(InMemoryBus):
    """The embedded bus, held shut until ``gate`` is set (a broker that stopped answering)."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()

    def publish(self, topic: str, envelope: Envelope) -> None:
        self.gate.wait(30)
        super().publish(topic, envelope)


def _metric(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _events(bus) -> int:  # type: ignore[no-untyped-def]
    return sum(len(decode_as(e, pb.InferenceEventBatch).events) for e in bus.messages(Topic.INFERENCE))


def test_full_buffer_drops_are_counted_and_requests_succeed(store_copy: Path) -> None:
    bus = GatedBus()
    service = start_service(store_copy, bus=bus, event_buffer_size=2, models=["lstm"])
    try:
        with service.client() as client:
            codes = [client.post("/v2/models/lstm/infer", json=window_request(1)).status_code for _ in range(10)]
            assert codes == [200] * 10
            text = client.get("/metrics").text
            dropped = _metric(text, "mitiga_events_dropped_total", topic=Topic.INFERENCE, reason="buffer_full")
            assert 5 <= dropped <= 8  # 10 served, 2 buffered, 1-3 taken by the publisher thread
            assert re.search(r"^mitiga_event_buffer_depth 2\.0$", text, re.M)
            bus.gate.set()
            deadline = time.monotonic() + 10
            while _events(bus) < 10 - dropped:
                assert time.monotonic() < deadline
                time.sleep(0.02)
            text = client.get("/metrics").text
            published = _metric(text, "mitiga_events_published_total", topic=Topic.INFERENCE)
            assert published + dropped == 10  # every served request is either delivered or counted
    finally:
        bus.gate.set()
        service.running.stop()
