"""What a restarted detector does with redelivered events, and feedback that arrives before its prediction.

The consumer commits offsets after a batch and its checkpoint; a detector that dies in between gets the batch
again. These tests stand for that restart with a second DetectorCore on the same state store, handed the same
envelopes again.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from mitiga_core.errors import Unavailable
from mitiga_core.labelled import LabelledLog
from mitiga_core.state import Bounded, InMemoryStateStore
from mitiga_detector.core import DetectorCore
from mitiga_detector.metrics import DetectorMetrics
from tests.detector.conftest import Harness, feedback, inference, write_bundle

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from mitiga_core.events import Envelope
    from mitiga_core.state import Write


def restarted(h: Harness) -> DetectorCore:
    """A new detector process: empty memory and metrics, the same state store."""
    h.metrics = DetectorMetrics()
    h.core = DetectorCore(h.settings, store=h.store, state=h.state, publisher=h.publisher, metrics=h.metrics,
                          launcher=h.launcher)
    return h.core


def traffic(rows: int, labelled: int) -> list[Envelope]:
    """``rows`` one-row inference events and one feedback event labelling the first ``labelled`` of them."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(rows, 3)).astype(np.float32)
    envelopes = [inference(x[i:i + 1], x[i:i + 1].sum(axis=1, keepdims=True), request_id=f"r{i}")
                 for i in range(rows)]
    envelopes.append(feedback([(f"r{i}", [float(x[i].sum()) + 0.5]) for i in range(labelled)]))
    return envelopes


def counts(h: Harness) -> tuple[int, int, int]:
    """Rows in the open window, rows in the performance window, labelled rows kept for the retrainer."""
    monitor = h.core.monitor("tab", "1")
    data = LabelledLog(h.state).read("tab")
    return monitor.window.rows, len(monitor.performance), 0 if data is None else len(data.x)


def test_a_crash_before_the_checkpoint_loses_nothing(harness: Harness) -> None:
    envelopes = traffic(30, labelled=10)
    for envelope in envelopes:
        harness.core.handle(envelope)
    assert counts(harness) == (30, 10, 0)  # the labelled rows wait for the checkpoint
    restarted(harness)  # killed before the checkpoint: the whole batch comes again
    for envelope in envelopes:
        harness.core.handle(envelope)
    harness.core.checkpoint()
    assert counts(harness) == (30, 10, 10)
    assert harness.value("mitiga_detector_events_duplicate_total") == 0
    assert harness.value("mitiga_feedback_joined_total", model="tab") == 10


def test_a_crash_after_the_checkpoint_counts_nothing_twice(harness: Harness) -> None:
    envelopes = traffic(30, labelled=10)
    for envelope in envelopes:
        harness.core.handle(envelope)
    harness.core.checkpoint()
    restarted(harness)  # killed after the checkpoint, before the commit
    for envelope in envelopes:
        harness.core.handle(envelope)
    harness.core.checkpoint()
    assert counts(harness) == (30, 10, 10)
    assert harness.value("mitiga_detector_events_duplicate_total") == len(envelopes)


class FailingApply(InMemoryStateStore):
    """An in-process store whose next ``apply`` fails as an unreachable Redis would (the real outage is in
    tests/devstack/test_stack_faults.py)."""

    def __init__(self) -> None:
        super().__init__()
        self.fail_next = False

    def apply(self, writes: Sequence[Write]) -> None:
        if self.fail_next:
            self.fail_next = False
            raise Unavailable("redis unreachable")
        super().apply(writes)


def test_a_failed_checkpoint_keeps_its_writes_for_the_next(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.state = FailingApply()
    restarted(h)
    write_bundle(h.store)
    envelopes = traffic(20, labelled=5)
    for envelope in envelopes:
        h.core.handle(envelope)
    h.state.fail_next = True
    with pytest.raises(Unavailable):
        h.core.checkpoint()
    assert counts(h) == (20, 5, 0)
    for envelope in envelopes:  # not committed, so delivered again: already in memory, so skipped
        h.core.handle(envelope)
    h.core.checkpoint()
    assert counts(h) == (20, 5, 5)
    restarted(h)
    assert counts(h) == (20, 5, 5)  # and it is all in the checkpoint
    h.publisher.stop()


def test_feedback_read_before_its_prediction_waits_for_it(harness: Harness) -> None:
    x = np.ones((2, 3), np.float32)
    harness.core.handle(feedback([("early", [3.5, 2.5])]))
    harness.core.checkpoint()
    assert harness.value("mitiga_feedback_parked") == 1
    restarted(harness)  # the wait survives a restart
    harness.core.handle(inference(x, x.sum(axis=1, keepdims=True), request_id="early"))
    harness.core.checkpoint()
    assert harness.value("mitiga_feedback_joined_total", model="tab") == 1
    assert harness.value("mitiga_feedback_parked") == 0
    assert counts(harness) == (2, 2, 2)
    monitor = harness.core.monitor("tab", "1")
    assert monitor.performance.metrics(monitor.manifest)["original"]["mae"] == pytest.approx(0.5)


def test_feedback_that_waits_too_long_is_counted_unmatched(tmp_path: Path) -> None:
    h = Harness(tmp_path, feedback_wait_s=0.2)
    write_bundle(h.store)
    h.core.handle(feedback([("late", [1.0])]))
    h.core.checkpoint()
    assert h.value("mitiga_feedback_unmatched_total", model="tab", reason="no_prediction") is None
    time.sleep(0.3)
    h.core.checkpoint()
    assert h.value("mitiga_feedback_unmatched_total", model="tab", reason="no_prediction") == 1
    assert h.value("mitiga_feedback_parked") == 0
    x = np.ones((1, 3), np.float32)
    h.core.handle(inference(x, x.sum(axis=1, keepdims=True), request_id="late"))  # too late: no join
    assert h.value("mitiga_feedback_joined_total", model="tab") is None
    h.publisher.stop()


@pytest.mark.parametrize(("overrides", "counted"), [({"feedback_parked_max": 2}, 1), ({"feedback_wait_s": 0}, 3),
                                                    ({"feedback_parked_max_bytes": 1500}, 2)])
def test_feedback_past_the_parking_bound_is_counted_at_once(tmp_path: Path, overrides: dict[str, float],
                                                            counted: int) -> None:
    h = Harness(tmp_path, **overrides)
    write_bundle(h.store)
    h.core.handle(feedback([(f"f{i}", [1.0] * 30) for i in range(3)]))  # about 1.2 kB each
    assert h.value("mitiga_feedback_unmatched_total", model="tab", reason="no_prediction") == counted
    h.core.checkpoint()
    assert h.value("mitiga_feedback_parked") == 3 - counted
    h.publisher.stop()


def test_the_error_stream_detector_keeps_its_reference_level_across_a_restart(harness: Harness) -> None:
    """ADWIN's state is rebuilt from the checkpointed labelled window: a jump in the error right after a restart
    is still a change (a detector that started afresh would take the new level as its baseline)."""
    from tests.detector.test_core import stream

    rng = np.random.default_rng(21)
    stream(harness, rng, 4, label=True, error=0.0)
    harness.core.checkpoint()
    assert harness.value("mitiga_concept_drift_alarms_total", model="tab") is None
    restarted(harness)
    stream(harness, rng, 2, label=True, error=3.0)
    assert (harness.value("mitiga_concept_drift_alarms_total", model="tab") or 0) >= 1


@pytest.mark.parametrize("checkpointed", [0, 15])
def test_an_episode_replayed_after_a_crash_keeps_its_id_and_its_one_retrain(tmp_path: Path, checkpointed: int) -> None:
    """The trigger's request is made at once, the episode reaches the state store with the next checkpoint: a
    detector killed in between replays the window that opened the episode and must name it the same, or the episode
    would retrain twice. The sequential test's statistics are checkpointed too, so the replay closes the same windows
    (optionally a checkpoint part-way, ``checkpointed`` events in)."""
    h = Harness(tmp_path, trigger_policy="drift", cooldown_s=0, max_attempts=1)
    write_bundle(h.store)
    rng = np.random.default_rng(21)
    x = rng.normal(size=(400, 3)).astype(np.float32)
    x[100:] += 2.0
    envelopes = [inference(x[i:i + 10], x[i:i + 10].sum(axis=1, keepdims=True)) for i in range(0, 400, 10)]
    for envelope in envelopes[:checkpointed]:
        h.core.handle(envelope)
    h.core.checkpoint()
    for envelope in envelopes[checkpointed:]:
        h.core.handle(envelope)
    first = h.core.state_of("tab")["episode_id"]
    assert first and len(h.launcher.specs) == 1
    restarted(h)  # killed before its next checkpoint: everything after the last one comes again
    for envelope in envelopes[checkpointed:]:
        h.core.handle(envelope)
    assert h.core.state_of("tab")["episode_id"] == first
    assert len(h.launcher.specs) == 1
    h.publisher.stop()


class FaultyStore(InMemoryStateStore):
    """The embedded store with one fault injected on demand: the ``nth`` next call of ``get`` or
    ``set_bounded`` raises Unavailable, as the Redis store does once its retries run out."""

    fault: tuple[str, int] | None = None

    def arm(self, method: str, nth: int) -> None:
        self.fault = (method, nth)

    def _trip(self, method: str) -> None:
        if self.fault is None or self.fault[0] != method:
            return
        nth = self.fault[1]
        self.fault = (method, nth - 1) if nth > 1 else None
        if nth == 1:
            raise Unavailable("redis unreachable after 3 attempts")

    def get(self, key: str) -> bytes | None:
        self._trip("get")
        return super().get(key)

    def set_bounded(self, index: str, items: Any, **bounds: Any) -> Bounded:
        self._trip("set_bounded")
        return super().set_bounded(index, items, **bounds)


def test_a_state_store_error_mid_batch_counts_nothing_twice_on_redelivery(tmp_path: Path) -> None:
    state = FaultyStore()
    h = Harness(tmp_path)
    h.state = state
    h.core = DetectorCore(h.settings, store=h.store, state=state, publisher=h.publisher, metrics=h.metrics,
                          launcher=h.launcher)
    write_bundle(h.store)
    x = np.ones((7, 3), np.float32)
    envelope = inference(x, x.sum(axis=1, keepdims=True), request_id="r1")
    state.arm("set_bounded", 1)  # storing the prediction fails, after the window took the rows
    with pytest.raises(Unavailable):
        h.core.handle(envelope)
    h.core.handle(envelope)  # the consumer delivers the batch again
    assert h.core.monitor("tab", "1").window.rows == 7
    assert h.value("mitiga_detector_events_total", type="InferenceEvent") == 1
    for rid in ("r2", "r3"):
        h.core.handle(inference(x[:2], x[:2].sum(axis=1, keepdims=True), request_id=rid))
    truth = [3.0, 3.0]
    items = feedback([("r2", truth), ("r3", truth)])
    state.arm("get", 3)  # the seen check, r2's lookup, then r3's lookup fails
    with pytest.raises(Unavailable):
        h.core.handle(items)
    h.core.handle(items)
    assert h.value("mitiga_feedback_joined_total", model="tab") == 2  # r2 once, r3 once
    assert len(h.core.monitor("tab", "1").performance) == 4  # two rows each
    h.core.checkpoint()
    assert h.value("mitiga_feedback_unmatched_total", model="tab", reason="no_prediction") is None
    h.publisher.stop()
