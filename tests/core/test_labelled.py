"""The labelled log: compact binary records with their source request, bounded in bytes per model."""

from __future__ import annotations

import json

import numpy as np

from mitiga_core.labelled import LabelledLog, decode_record, encode_record
from mitiga_core.state import InMemoryStateStore


def test_a_record_round_trips_in_float32_with_its_source_and_is_far_smaller_than_json() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(3, 50)).astype(np.float32), rng.normal(size=(3, 1)).astype(np.float32)
    raw = encode_record(x, y, "2004-01-02", "req-1")
    back = decode_record(raw)
    np.testing.assert_array_equal(back.x, x)
    np.testing.assert_array_equal(back.y, y)
    assert (back.when, back.source) == ("2004-01-02", "req-1")
    as_json = json.dumps({"x": x.astype(np.float64).tolist(), "y": y.astype(np.float64).tolist(), "t": "2004-01-02"})
    assert len(raw) * 3 < len(as_json)


def test_records_of_earlier_versions_are_still_read() -> None:
    state = InMemoryStateStore()
    state.append("mitiga:labelled:m", json.dumps({"x": [[1.0, 2.0]], "y": [[3.0]], "t": "2004-01-01"}).encode())
    log = LabelledLog(state)
    log.append("m", np.asarray([[4.0, 5.0]], np.float32), np.asarray([[6.0]], np.float32), "2004-01-02", "r2")
    data = log.read("m")
    assert data is not None
    np.testing.assert_array_equal(data.x, [[1, 2], [4, 5]])
    assert list(data.dates) == ["2004-01-01", "2004-01-02"]
    assert list(data.sources) == ["record-0", "r2"]  # a record without a source counts as a source of its own


def test_the_log_is_bounded_in_bytes_per_model() -> None:
    state = InMemoryStateStore()
    x, y = np.zeros((10, 50), np.float32), np.zeros((10, 1), np.float32)
    record = len(encode_record(x, y, "2004-01-01", "r"))
    log = LabelledLog(state, max_requests=10_000, max_bytes=20 * record)
    for i in range(100):
        log.append("m", x, y, "2004-01-01", "r")
        log.append("other", x[:1], y[:1], "2004-01-01", f"r{i}")
    stored = state.items("mitiga:labelled:m")
    assert len(stored) == 20 and sum(map(len, stored)) <= 20 * record
    assert len(state.items("mitiga:labelled:other")) == 100  # another model's budget is its own
