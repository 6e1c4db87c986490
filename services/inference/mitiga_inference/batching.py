"""Adaptive micro-batching: concurrent requests to one model run as one model call.

One task per model version takes everything queued (up to ``max_rows``), runs it on a worker thread,
and splits the result. Requests that arrive while a batch runs form the next batch, so under load
batches grow by themselves and a lone request never waits. ``max_wait_s`` adds an optional wait.
Up to ``concurrency`` batches run at once (as Triton's instance count): one large model call rarely keeps every core
busy (a recurrent model's steps run one after another), so a second call beside it adds throughput. Small work
(fewer than ``parallel_min_rows`` rows queued) waits for the batch in flight instead: a small call is bound by
Python's dispatch, gains nothing beside another, and batches better after it.

The queue is bounded in rows (``max_queued_rows``): past it a request is refused at once with ``Overloaded`` (429,
``Retry-After``) instead of waiting, so a flood cannot grow memory or latency without bound.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np

from mitiga_core.errors import MitigaError, ModelNotReady, Overloaded

if TYPE_CHECKING:
    from collections.abc import Callable

    from mitiga_core.types import FloatArray


class MicroBatcher:
    def __init__(
        self,
        fn: Callable[[FloatArray], FloatArray],
        *,
        max_rows: int,
        max_wait_s: float = 0.0,
        on_batch: Callable[[int], None] | None = None,
        max_queued_rows: int | None = None,
        concurrency: int = 1,
        parallel_min_rows: int = 32,
    ) -> None:
        self._fn = fn
        self._max_rows = max_rows
        self._max_queued = max_queued_rows
        self._queued_rows = 0
        self._max_wait_s = max_wait_s
        self._on_batch = on_batch
        self._queue: deque[tuple[FloatArray, asyncio.Future[FloatArray]]] = deque()
        self._wakeup = asyncio.Event()
        # one thread per instance, the first used whenever it is free: work that runs alone stays on one thread
        self._executors = [ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"model-{i}")
                           for i in range(concurrency)]
        self._free = list(range(concurrency))
        self._released = asyncio.Event()
        self._parallel_min_rows = parallel_min_rows
        self._running: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def submit(self, x: FloatArray) -> FloatArray:
        if self._closed:
            raise ModelNotReady("model version is being unloaded")
        if self._max_queued is not None and self._queue and self._queued_rows + len(x) > self._max_queued:
            raise Overloaded(f"the model's queue holds {self._queued_rows} rows (at most {self._max_queued}); "
                             "retry shortly", retry_after_s=1)
        future: asyncio.Future[FloatArray] = asyncio.get_running_loop().create_future()
        self._queue.append((x, future))
        self._queued_rows += len(x)
        self._wakeup.set()
        return await future

    def _pop(self) -> tuple[FloatArray, asyncio.Future[FloatArray]]:
        item = self._queue.popleft()
        self._queued_rows -= len(item[0])
        return item

    def _take(self) -> list[tuple[FloatArray, asyncio.Future[FloatArray]]]:
        batch = [self._pop()]
        rows = len(batch[0][0])
        while self._queue and rows + len(self._queue[0][0]) <= self._max_rows:
            item = self._pop()
            batch.append(item)
            rows += len(item[0])
        return batch

    async def _gather(self) -> list[tuple[FloatArray, asyncio.Future[FloatArray]]]:
        batch = self._take()
        if self._max_wait_s <= 0:
            return batch
        deadline = time.monotonic() + self._max_wait_s
        while sum(len(x) for x, _ in batch) < self._max_rows and (remaining := deadline - time.monotonic()) > 0:
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), remaining)
            except TimeoutError:
                break
            rows = sum(len(x) for x, _ in batch)
            while self._queue and rows + len(self._queue[0][0]) <= self._max_rows:
                item = self._pop()
                batch.append(item)
                rows += len(item[0])
        return batch

    async def _run(self) -> None:
        while True:
            if not self._queue:
                if self._closed:
                    if self._running:
                        await asyncio.gather(*list(self._running))
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            while not self._free:  # every instance busy: what is queued by the time one frees forms the batch
                self._released.clear()
                await self._released.wait()
            while (busy := {t for t in self._running if not t.done()}) and self._queued_rows < self._parallel_min_rows:
                await asyncio.wait(busy, return_when=asyncio.FIRST_COMPLETED)  # small work: after the batch in flight
            if not self._queue:
                continue
            batch = await self._gather()
            self._free.sort()
            task = asyncio.get_running_loop().create_task(self._execute(batch, self._free.pop(0)))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _execute(self, batch: list[tuple[FloatArray, asyncio.Future[FloatArray]]], instance: int) -> None:
        try:
            inputs = batch[0][0] if len(batch) == 1 else np.concatenate([x for x, _ in batch])
            try:
                outputs = await asyncio.get_running_loop().run_in_executor(self._executors[instance], self._fn,
                                                                           inputs)
            except Exception as exc:
                error = exc if isinstance(exc, MitigaError) else MitigaError(f"model execution failed: {exc}")
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                return
            if self._on_batch is not None:
                self._on_batch(len(inputs))
            start = 0
            for x, future in batch:
                if not future.done():
                    future.set_result(outputs[start : start + len(x)])
                start += len(x)
        finally:
            self._free.append(instance)
            self._released.set()

    async def close(self) -> None:
        """Finish what is queued, then stop."""
        self._closed = True
        self._wakeup.set()
        if self._task is not None:
            await self._task
        for executor in self._executors:
            executor.shutdown(wait=True)
