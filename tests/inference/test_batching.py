"""The micro-batcher on its own: requests that arrive while a batch runs form the next one, and with
``concurrency`` N up to N large batches run at once (a large model call rarely keeps every core busy); small work
waits for the batch in flight."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from mitiga_inference.batching import MicroBatcher


def _model(barrier: threading.Barrier | None, calls: list[int], timeout_s: float = 5):  # type: ignore[no-untyped-def]
    def fn(x: np.ndarray) -> np.ndarray:
        calls.append(len(x))
        if barrier is not None:
            barrier.wait(timeout=timeout_s)  # returns only once `parties` calls are running at the same time
        return x.sum(axis=1, keepdims=True)
    return fn


async def _serve(batcher: MicroBatcher, requests: list[np.ndarray]) -> list[np.ndarray]:
    batcher.start()
    try:
        return list(await asyncio.gather(*(batcher.submit(x) for x in requests)))
    finally:
        await batcher.close()


def test_two_batches_run_at_once_with_concurrency_two() -> None:
    calls: list[int] = []
    batcher = MicroBatcher(_model(threading.Barrier(2), calls), max_rows=4, concurrency=2, parallel_min_rows=4)
    requests = [np.full((4, 3), i, np.float32) for i in range(2)]  # each a full batch, large enough to overlap
    answers = asyncio.run(_serve(batcher, requests))
    assert calls == [4, 4]
    assert [a[:, 0].tolist() for a in answers] == [[0.0] * 4, [3.0] * 4]  # each request its own rows


def test_with_concurrency_one_a_batch_never_runs_beside_another() -> None:
    calls: list[int] = []
    # one call at a time: the lone call waits at the barrier in vain, however long it waits
    batcher = MicroBatcher(_model(threading.Barrier(2), calls, timeout_s=1), max_rows=4, concurrency=1,
                           parallel_min_rows=4)
    with pytest.raises(Exception, match="model execution failed"):
        asyncio.run(_serve(batcher, [np.ones((4, 3), np.float32), np.ones((4, 3), np.float32)]))


def test_requests_queued_while_the_instances_are_busy_form_one_batch() -> None:
    calls: list[int] = []
    batcher = MicroBatcher(_model(None, calls), max_rows=64, concurrency=2)
    requests = [np.full((1, 3), i, np.float32) for i in range(10)]
    answers = asyncio.run(_serve(batcher, requests))
    assert sum(calls) == 10 and len(calls) < 10  # batched
    assert [float(a[0, 0]) for a in answers] == [3.0 * i for i in range(10)]


def test_small_work_waits_for_the_batch_in_flight_even_with_a_free_instance() -> None:
    calls: list[int] = []
    batcher = MicroBatcher(_model(threading.Barrier(2), calls, timeout_s=1), max_rows=4, concurrency=2,
                           parallel_min_rows=32)
    with pytest.raises(Exception, match="model execution failed"):  # never two at once: the barrier breaks
        asyncio.run(_serve(batcher, [np.ones((4, 3), np.float32), np.ones((4, 3), np.float32)]))
