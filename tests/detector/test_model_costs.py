"""What one model's window and a checkpoint cost does not grow with the other models a replica holds (issue 31, P8):
a checkpoint writes the episodes of the models judged since the last one, and a window replaces its own model's
deciding series without reading every model's."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mitiga_core.state import InMemoryStateStore, Write
from mitiga_detector.core import DetectorCore
from tests.detector.conftest import Harness, inference, write_bundle


class RecordingStore(InMemoryStateStore):
    """The embedded store, recording the keys each ``apply`` writes."""

    def __init__(self) -> None:
        super().__init__()
        self.applied: list[list[str]] = []

    def apply(self, writes: Sequence[Write]) -> None:
        self.applied.append([w.key for w in writes])
        super().apply(writes)


def window(h: Harness, name: str, rng: np.random.Generator, shift: float = 0.0) -> None:
    for _ in range(h.settings.window_size // 10):
        x = rng.normal(shift, 1.0, size=(10, 3)).astype(np.float32)
        h.core.handle(inference(x, x.sum(axis=1, keepdims=True), name=name))


@pytest.fixture
def two_models(tmp_path: Path) -> Harness:
    h = Harness(tmp_path)
    h.state = RecordingStore()
    h.core = DetectorCore(h.settings, store=h.store, state=h.state, publisher=h.publisher, metrics=h.metrics,
                          launcher=h.launcher)
    write_bundle(h.store, "a")
    write_bundle(h.store, "b")
    return h


def test_a_checkpoint_writes_the_episodes_of_the_models_judged_since_the_last(two_models: Harness) -> None:
    h, rng = two_models, np.random.default_rng(1)
    window(h, "a", rng)
    window(h, "b", rng)
    h.core.checkpoint()
    assert {k.rsplit(":", 1)[-1] for k in h.state.applied[-1] if ":episode:" in k} == {"a", "b"}
    window(h, "b", rng)
    h.core.checkpoint()
    assert [k.rsplit(":", 1)[-1] for k in h.state.applied[-1] if ":episode:" in k] == ["b"]
    h.core.checkpoint()
    assert not [k for k in h.state.applied[-1] if ":episode:" in k]
    # what was written is what a new replica restores: both models' episodes
    again = DetectorCore(h.settings, store=h.store, state=h.state, publisher=h.publisher, metrics=h.metrics,
                         launcher=h.launcher)
    for name in ("a", "b"):
        assert again._react.judge.episode(name) == h.core._react.judge.episode(name)


def test_a_window_replaces_its_own_deciding_series_without_reading_the_others(two_models: Harness,
                                                                                 monkeypatch: Any) -> None:
    h, rng = two_models, np.random.default_rng(2)

    def series(model: str) -> set[str]:
        return {s.labels["signal"] for family in h.metrics.registry.collect() for s in family.samples
                if s.name == "mitiga_model_deciding_signal" and s.labels["model"] == model}

    for _ in range(3):
        window(h, "a", rng, shift=3.0)
        window(h, "b", rng, shift=3.0)
    assert series("a") and series("b")
    reads: list[str] = []
    monkeypatch.setattr(h.metrics.deciding, "collect", lambda: reads.append("collect") or [])
    for _ in range(8):  # the inputs come back: the deciding series go once the episode closes
        window(h, "a", rng)
    monkeypatch.undo()
    assert reads == []
    assert series("a") == set()
    assert series("b")  # the other model's series stay


def test_the_monitors_held_and_their_build_time_are_exported(two_models: Harness) -> None:
    h, rng = two_models, np.random.default_rng(3)
    assert h.value("mitiga_detector_monitors") in (None, 0.0)
    window(h, "a", rng)
    window(h, "b", rng)
    window(h, "a", rng)
    assert h.value("mitiga_detector_monitors") == 2
    assert h.value("mitiga_detector_processing_seconds_count", stage="build") == 2  # once per model version
    assert h.value("mitiga_detector_processing_seconds_sum", stage="build") > 0
    h.core.reassigned(lambda name: name == "a")  # the partitions of b went to another replica
    assert h.value("mitiga_detector_monitors") == 1
