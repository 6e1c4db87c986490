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


def _event(i: int, floats: int) -> pb.InferenceEvent:
    return pb.InferenceEvent(event_id=f"e{i}", request_id=f"r{i}", model_name="m",
                             inputs=pb.Matrix(shape=[1, floats], data=[1.5] * floats))


def test_batches_are_split_by_bytes_and_an_event_too_large_alone_is_counted_not_sent() -> None:
    bus = InMemoryBus()
    registry = CollectorRegistry()
    publisher = EventPublisher(bus, source="test", maxsize=1000, registry=registry, linger_s=0.5,
                               max_message_bytes=20_000,
                               batch_as={"t": lambda events: pb.InferenceEventBatch(events=events)})
    for i in range(50):
        publisher.offer("t", "m", lambda i=i: _event(i, 1000), size=4000)  # about 4 kB each
    publisher.offer("t", "m", lambda: _event(99, 10_000), size=40_000)  # 40 kB: more than a message may carry
    publisher.start()
    publisher.stop()
    messages = bus.messages("t")
    assert all(len(m.payload) <= 20_000 for m in messages) and len(messages) >= 10
    ids = [e.event_id for m in messages for e in decode_as(m, pb.InferenceEventBatch).events]
    assert ids == [f"e{i}" for i in range(50)]  # every event, in order, none twice
    assert registry.get_sample_value("mitiga_events_published_total", {"topic": "t"}) == 50
    assert registry.get_sample_value("mitiga_events_dropped_total", {"topic": "t", "reason": "too_large"}) == 1


def test_the_buffer_is_bounded_in_bytes() -> None:
    registry = CollectorRegistry()
    publisher = EventPublisher(InMemoryBus(), source="test", maxsize=1000, registry=registry, max_queue_bytes=10_000)
    accepted = [publisher.offer("t", None, lambda: pb.FeedbackEvent(), size=3000) for _ in range(5)]
    assert accepted == [True, True, True, False, False]
    assert registry.get_sample_value("mitiga_events_dropped_total", {"topic": "t", "reason": "buffer_full"}) == 2
    publisher.start()
    publisher.stop()
    assert publisher.offer("t", None, lambda: pb.FeedbackEvent(), size=9000)  # drained: room again
