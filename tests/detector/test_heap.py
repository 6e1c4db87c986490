"""The detector process keeps its monitors out of the collector's full passes, and frees dropped ones
(mitiga_detector.heap)."""

from __future__ import annotations

import gc
import time
import weakref
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from mitiga_core.events import Topic
from mitiga_detector.consumer import DetectorConsumer
from mitiga_detector.heap import Heap
from tests.detector.conftest import Harness, inference, write_bundle


@pytest.fixture
def thawed() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()  # the rest of the test process is left to the collector as usual


class Node:
    me: Node


def test_a_batch_that_built_monitors_freezes_what_is_alive(thawed: None) -> None:
    heap = Heap()
    heap.after_batch(0)
    assert gc.get_freeze_count() == 0
    heap.after_batch(2)
    assert gc.get_freeze_count() > 0
    gc.unfreeze()
    heap.after_batch(2)  # no monitor built since: no new pass
    assert gc.get_freeze_count() == 0


def test_dropped_monitors_are_freed_cycles_and_all(thawed: None) -> None:
    node = Node()
    node.me = node  # a reference cycle: only the collector frees it
    ref = weakref.ref(node)
    gc.freeze()
    del node
    gc.collect()
    assert ref() is not None  # frozen: the collector leaves it alone
    Heap().reassigned()
    assert ref() is None
    assert gc.get_freeze_count() > 0  # what is still alive is frozen again


@pytest.mark.parametrize("own_process", [True, False])
def test_the_consumer_freezes_after_a_batch_that_built_a_monitor_in_its_own_process(
        tmp_path: Path, thawed: None, own_process: bool) -> None:
    """In a process of its own; not when it shares the process (standalone mode) with the inference service."""
    h = Harness(tmp_path)
    write_bundle(h.store)
    consumer = DetectorConsumer(h.bus, h.core, "g", heap=Heap() if own_process else None)
    consumer.start()
    try:
        x = np.random.default_rng(0).normal(size=(10, 3)).astype(np.float32)
        h.bus.publish(Topic.INFERENCE, inference(x, x.sum(axis=1, keepdims=True)))
        deadline = time.monotonic() + 30
        while not h.core.monitors_built and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # the batch's checkpoint
        assert h.core.monitors_built == 1
        assert (gc.get_freeze_count() > 0) == own_process
    finally:
        consumer.stop()
        h.publisher.stop()


def test_the_detector_process_alone_freezes() -> None:
    """``python -m mitiga_detector`` builds its app as the process's only service; standalone builds it beside
    the inference service with the default."""
    import inspect

    from mitiga_detector import __main__ as entrypoint
    from mitiga_detector.app import create_app

    assert inspect.signature(create_app).parameters["own_process"].default is False
    assert "own_process=True" in inspect.getsource(entrypoint.main)
