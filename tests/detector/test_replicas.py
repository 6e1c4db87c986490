"""Detector replicas sharing the models: two DetectorCores on one state store stand for two processes in one
consumer group; ``reassigned`` is what the consumer calls when the group's partitions move between them."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from mitiga_core.labelled import LabelledLog
from mitiga_detector.core import DetectorCore
from mitiga_detector.metrics import DetectorMetrics
from tests.detector.conftest import Harness, feedback, inference, write_bundle

if TYPE_CHECKING:
    from pathlib import Path

    from mitiga_core.events import Envelope


def replica(h: Harness) -> DetectorCore:
    """A second detector process beside ``h.core``: its own memory and metrics, the same state store."""
    return DetectorCore(h.settings, store=h.store, state=h.state, publisher=h.publisher, metrics=DetectorMetrics(),
                        launcher=h.launcher)


def labelled_traffic(start: int, rows: int, name: str = "tab") -> list[Envelope]:
    """``rows`` one-row predictions of ``name`` from request ``start`` on, then their ground truth (off by 0.5)."""
    x = np.random.default_rng(start).normal(size=(rows, 3)).astype(np.float32)
    ids = [f"{name}-{start + i}" for i in range(rows)]
    events = [inference(x[i:i + 1], x[i:i + 1].sum(axis=1, keepdims=True), name=name, request_id=ids[i])
              for i in range(rows)]
    return [*events, feedback([(r, [float(v) + 0.5]) for r, v in zip(ids, x.sum(axis=1), strict=True)], name=name)]


def handle(core: DetectorCore, envelopes: list[Envelope]) -> None:
    for envelope in envelopes:
        core.handle(envelope)
    core.checkpoint()


def test_a_model_that_moves_away_and_back_resumes_from_its_new_owners_checkpoint(tmp_path: Path) -> None:
    h = Harness(tmp_path, window_size=40)
    write_bundle(h.store)
    a, b = h.core, replica(h)
    handle(b, labelled_traffic(0, 30))  # b alone in the group holds every model
    b.reassigned(lambda model: model != "tab")  # a joins and takes tab's partition
    handle(a, labelled_traffic(30, 30))  # a closes the first window (40 rows) and holds 20 more
    a.reassigned(lambda model: True)
    b.reassigned(lambda model: True)  # a is gone: tab comes back to b
    handle(b, labelled_traffic(60, 30))
    monitor = b.monitor("tab", "1")
    assert monitor.windows_seen == 2 and monitor.window.rows == 10  # 90 rows: two windows of 40 and 10 open
    assert len(monitor.performance) == 90
    data = LabelledLog(h.state).read("tab")
    assert data is not None and len(data.x) == 90  # every labelled row once
    h.publisher.stop()


def test_a_replica_stops_exporting_the_gauges_of_a_model_it_no_longer_holds(tmp_path: Path) -> None:
    h = Harness(tmp_path, window_size=20)
    write_bundle(h.store)
    write_bundle(h.store, "other")
    handle(h.core, labelled_traffic(0, 20) + labelled_traffic(0, 20, "other"))

    def level(model: str) -> float | None:
        return h.metrics.registry.get_sample_value("mitiga_drift_level", {"model": model, "drift_type": "data"})

    assert level("tab") is not None and level("other") is not None
    h.core.reassigned(lambda model: model == "other")
    assert level("tab") is None and level("other") is not None
    assert h.core.state_of("tab")["windows"] == 0 and h.core.state_of("other")["windows"] == 1
    # counters stay: they count what this replica did
    assert h.metrics.registry.get_sample_value("mitiga_feedback_joined_total", {"model": "tab"}) == 20
    h.publisher.stop()


def test_parked_feedback_moves_with_its_model(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    write_bundle(h.store)
    write_bundle(h.store, "other")
    a, b = h.core, replica(h)
    x = np.ones((1, 3), np.float32)
    handle(b, [feedback([("b-early", [1.0])], name="other")])  # b parks feedback of its own model
    handle(a, [feedback([("a-early", [3.5])])])  # a parks tab's, in its own checkpoint
    handle(b, [feedback([("b-later", [1.0])], name="other")])  # b saves again: a's item is not overwritten
    b.reassigned(lambda model: True)  # a is gone: tab moves to b, with its parked feedback
    handle(b, [inference(x, x.sum(axis=1, keepdims=True), request_id="a-early")])
    assert b.metrics.registry.get_sample_value("mitiga_feedback_joined_total", {"model": "tab"}) == 1
    assert b.metrics.registry.get_sample_value("mitiga_feedback_parked") == 2  # b's own two still wait
    h.publisher.stop()


def test_a_replica_that_joins_again_replays_from_the_checkpoint_without_the_failed_batchs_writes(
        tmp_path: Path) -> None:
    # a failed checkpoint leaves staged writes; the loop leaves the group, and the batch goes to whoever holds the
    # model when it joins again: the staged writes must not be applied by this replica as well
    h = Harness(tmp_path)
    write_bundle(h.store)
    a, b = h.core, replica(h)
    batch = labelled_traffic(0, 10)
    for envelope in batch:
        a.handle(envelope)  # handled, never checkpointed (the state store failed)
    a.reassigned(lambda model: False)  # a joins again without tab
    handle(b, batch)  # b, tab's new owner, gets the batch from the committed offsets
    handle(a, [])  # a's next checkpoint writes nothing of the dropped batch
    data = LabelledLog(h.state).read("tab")
    assert data is not None and len(data.x) == 10
    h.publisher.stop()
