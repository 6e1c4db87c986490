from __future__ import annotations

from prometheus_client import CollectorRegistry

from mitiga_core.bus import InMemoryBus
from mitiga_core.events import decode_as
from mitiga_core.pb.mitiga.v1 import events_pb2 as pb
from mitiga_core.publisher import EventPublisher


def test_stop_delivers_everything_buffered() -> None:
    bus = InMemoryBus()
    registry = CollectorRegistry()
    publisher = EventPublisher(bus, source="test", maxsize=1000, registry=registry, linger_s=0.5)
    publisher.start()
    for i in range(100):
        assert publisher.offer("t", "k", lambda i=i: pb.FeedbackEvent(event_id=f"e{i}"))
    publisher.stop()
    assert [decode_as(e, pb.FeedbackEvent).event_id for e in bus.messages("t")] == [f"e{i}" for i in range(100)]
    assert registry.get_sample_value("mitiga_events_published_total", {"topic": "t"}) == 100


def test_failing_bus_counts_publish_errors() -> None:
    class Broken(InMemoryBus):
        def publish(self, topic, envelope) -> None:  # type: ignore[no-untyped-def]
            raise ConnectionError("broker gone")

    registry = CollectorRegistry()
    publisher = EventPublisher(Broken(), source="test", maxsize=10, registry=registry, linger_s=0)
    publisher.start()
    for _ in range(3):
        publisher.offer("t", None, lambda: pb.FeedbackEvent(event_id="x"))
    publisher.stop()
    assert registry.get_sample_value("mitiga_events_dropped_total", {"topic": "t", "reason": "publish_error"}) == 3


def test_batched_topics_send_one_message_per_burst_and_key() -> None:
    bus = InMemoryBus()
    registry = CollectorRegistry()
    publisher = EventPublisher(bus, source="test", maxsize=1000, registry=registry, linger_s=0.5, max_batch=4,
                               batch_as={"inf": lambda events: pb.InferenceEventBatch(events=events)})
    for i in range(10):  # offered before the thread starts: one burst
        publisher.offer("inf", "a" if i % 2 else "b", lambda i=i: pb.InferenceEvent(event_id=f"e{i}"))
    publisher.offer("other", "a", lambda: pb.FeedbackEvent(event_id="f"))
    publisher.start()
    publisher.stop()
    batches = [(e.key, [ev.event_id for ev in decode_as(e, pb.InferenceEventBatch).events])
               for e in bus.messages("inf")]
    assert batches == [("b", ["e0", "e2", "e4", "e6"]), ("b", ["e8"]), ("a", ["e1", "e3", "e5", "e7"]), ("a", ["e9"])]
    assert len(bus.messages("other")) == 1  # topics not listed go one by one
    assert registry.get_sample_value("mitiga_events_published_total", {"topic": "inf"}) == 10
