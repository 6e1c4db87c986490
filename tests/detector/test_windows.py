from __future__ import annotations

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
