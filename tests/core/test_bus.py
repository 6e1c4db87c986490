from __future__ import annotations

import threading

from mitiga_core.bus import InMemoryBus
from mitiga_core.events import Envelope


def env(i: int) -> Envelope:
    return Envelope(payload=str(i).encode(), headers={"ce_id": str(i)}, key="m")


def test_uncommitted_records_are_redelivered_to_the_group() -> None:
    bus = InMemoryBus()
    for i in range(3):
        bus.publish("t", env(i))
    first = bus.subscribe(["t"], "g")
    assert [r.offset for r in first.poll(0.1)] == [0, 1, 2]
    first.close()  # no commit
    second = bus.subscribe(["t"], "g")
    records = second.poll(0.1, max_records=2)
    assert [r.envelope.payload for r in records] == [b"0", b"1"]
    second.commit()
    second.close()
    third = bus.subscribe(["t"], "g")
    assert [r.offset for r in third.poll(0.1)] == [2]


def test_groups_are_independent_and_topics_separate() -> None:
    bus = InMemoryBus()
    bus.publish("a", env(1))
    bus.publish("b", env(2))
    one, two = bus.subscribe(["a"], "g1"), bus.subscribe(["a", "b"], "g2")
    assert [r.topic for r in one.poll(0.1)] == ["a"]
    assert sorted(r.topic for r in two.poll(0.1)) == ["a", "b"]
    assert one.poll(0.05) == []


def test_poll_wakes_on_publish() -> None:
    bus = InMemoryBus()
    consumer = bus.subscribe(["t"], "g")
    timer = threading.Timer(0.1, lambda: bus.publish("t", env(9)))
    timer.start()
    records = consumer.poll(5.0)
    assert [r.envelope.payload for r in records] == [b"9"]


def test_retention_bounds_each_topic_and_late_consumers_skip_ahead() -> None:
    bus = InMemoryBus(retention=3)
    slow = bus.subscribe(["t"], "slow")
    for i in range(10):
        bus.publish("t", env(i))
    kept = bus.messages("t")
    assert 3 <= len(kept) <= 6 and kept[-1].payload == b"9"
    records = slow.poll(0.1)
    assert records[0].offset == 10 - len(kept) and records[-1].offset == 9
    assert [r.envelope.payload for r in records] == [e.payload for e in kept]
    assert bus.expired == 10 - len(kept)
