"""The monitors kept out of the garbage collector's full passes.

A replica holds a monitor per model version for as long as it holds the model: thousands of Python objects each
(the manifest, Alibi's detectors, the levels, the windows). CPython's full collection walks every tracked object;
with 300 models in one process that was 700,000 objects and 0.4 s with the interpreter held, and a full pass comes
every so often while events are handled or ``/metrics`` is rendered (a scrape took 0.65 s instead of 0.25). After a
batch that built monitors, :class:`Heap` freezes what is alive (``gc.freeze``: the collector no longer walks it;
reference counting still frees what is dropped). When the replica's models change (a rebalance drops some), it
thaws, collects once and freezes again, so the dropped monitors' reference cycles are freed too.

The detector's consumer drives it when the detector has its process to itself (``python -m mitiga_detector``);
the core knows nothing of it. In standalone mode the process is shared with the inference service, whose unloaded
models are reference cycles the collector must keep freeing, and a freeze postpones the next full pass (CPython
measures the old generation against its size before the freeze), so there it stays off. (A full ``make test`` in
which every in-process detector froze saw a test process grow 62 MB over 30 model loads and unloads, against a
20 MB limit, in ``tests/inference/test_model_budget.py``; likely this, not reproduced in isolation.)
"""

from __future__ import annotations

import gc


class Heap:
    def __init__(self) -> None:
        self._built = 0

    def after_batch(self, built: int) -> None:
        """``built``: the monitors built so far. Freeze once more when it grew."""
        if built != self._built:
            self._built = built
            gc.collect(1)  # the batch's young garbage goes first, not into the frozen generation
            gc.freeze()

    def reassigned(self) -> None:
        """Models were dropped: free their monitors, cycles included, then freeze the rest again."""
        gc.unfreeze()
        gc.collect()
        gc.freeze()
