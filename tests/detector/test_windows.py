from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np

from mitiga_detector.windows import WindowBuffer

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def rows(n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.ones((n, 2), np.float32), np.ones((n, 1), np.float32)


def test_count_window_closes_at_size() -> None:
    buf = WindowBuffer(size=10, seconds=0, min_rows=2)
    assert buf.add(*rows(6), T0) is None
    window = buf.add(*rows(6), T0 + timedelta(seconds=1))
    assert window is not None and len(window) == 12 and window.start == T0 and buf.rows == 0


def test_time_window_closes_by_event_time_once_it_has_enough_rows() -> None:
    buf = WindowBuffer(size=1000, seconds=60, min_rows=5)
    assert buf.add(*rows(2), T0) is None
    assert buf.add(*rows(2), T0 + timedelta(seconds=90)) is None  # time is up but only 4 rows
    window = buf.add(*rows(1), T0 + timedelta(seconds=100))
    assert window is not None and len(window) == 5
    assert (window.end - window.start).total_seconds() == 100


def test_an_open_window_survives_its_checkpoint_exactly_and_old_checkpoints_still_restore() -> None:
    rng = np.random.default_rng(12)
    when = datetime(2026, 1, 1, tzinfo=UTC)
    buffer = WindowBuffer(size=100, seconds=0, min_rows=10)
    rows, outputs = rng.normal(size=(37, 4)).astype(np.float32), rng.normal(size=(37, 2)).astype(np.float32)
    buffer.add(rows, outputs, when)
    snapshot = json.loads(json.dumps(buffer.snapshot()))  # as the state store keeps it
    restored = WindowBuffer(size=100, seconds=0, min_rows=10)
    restored.restore(snapshot)
    closed = restored.close()
    assert closed is not None and closed.start == when
    assert np.array_equal(closed.features, rows) and np.array_equal(closed.outputs, outputs)
    assert len(json.dumps(snapshot)) < len(json.dumps(rows.tolist()))  # packed, not as JSON numbers
    before = {"features": rows.tolist(), "outputs": outputs.tolist(), "start": when.isoformat(),
              "end": when.isoformat()}  # a checkpoint written before the rows were packed
    old = WindowBuffer(size=100, seconds=0, min_rows=10)
    old.restore(before)
    closed = old.close()
    assert closed is not None and np.array_equal(closed.features, rows) and np.array_equal(closed.outputs, outputs)
