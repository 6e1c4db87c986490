from __future__ import annotations

import numpy as np
import pytest

from mitiga_core.bundle import TrainingData
from mitiga_retrainer.gate import decide
from mitiga_retrainer.holdout import concentration, holdout_mask, split_holdout
from mitiga_retrainer.strategies import build_training_set, combine


def data(days: list[str]) -> TrainingData:
    n = len(days)
    return TrainingData(x=np.arange(n, dtype=np.float32).reshape(n, 1), y=np.arange(n, dtype=np.float32).reshape(n, 1),
                        dates=np.asarray(days))


DAYS = [f"2004-01-{d:02d}" for d in range(1, 31)]


def test_combine_orders_by_date_and_spread_one_holds_out_the_most_recent() -> None:
    original = data(DAYS[:20])
    production = TrainingData(x=np.full((10, 1), 100, np.float32), y=np.full((10, 1), 100, np.float32),
                              dates=np.asarray(DAYS[20:]), sources=np.asarray([f"r{i // 2}" for i in range(10)]))
    merged = combine(original, production)
    assert list(merged.dates) == DAYS and merged.x[-1, 0] == 100
    assert list(merged.sources[-2:]) == ["r4", "r4"] and len(set(merged.sources[:20])) == 20  # trusted rows apart
    train, holdout = split_holdout(merged, 5, spread=1)
    assert list(holdout.dates) == DAYS[25:] and list(train.dates) == DAYS[:25]
    with pytest.raises(ValueError, match="holdout"):
        split_holdout(merged, 30)


def test_the_holdout_is_drawn_across_the_recent_period_and_the_rest_is_trained_on() -> None:
    mask = holdout_mask(100, 12, spread=3, blocks=4)
    held = np.flatnonzero(mask)
    assert mask.sum() == 12 and held[-1] == 99  # the newest row is scored
    assert held[0] >= 100 - 36 and held[0] <= 100 - 30  # ... and the oldest comes from the start of the period
    runs = np.split(held, np.flatnonzero(np.diff(held) > 1) + 1)
    assert [len(r) for r in runs] == [3, 3, 3, 3]  # four contiguous blocks
    rows = TrainingData(x=np.arange(100, dtype=np.float32)[:, None], y=np.arange(100, dtype=np.float32)[:, None],
                        dates=np.asarray([f"d{i:03d}" for i in range(100)]))
    train, holdout = split_holdout(rows, 12)
    assert len(train.x) == 88 and not set(train.x[:, 0]) & set(holdout.x[:, 0])
    assert train.x[-1, 0] > holdout.x[0, 0]  # rows newer than part of the holdout are trained on


def test_concentration_names_the_largest_request_and_data_time() -> None:
    rows = TrainingData(x=np.zeros((10, 1), np.float32), y=np.zeros((10, 1), np.float32),
                        dates=np.asarray(["2004-01-01"] * 3 + [f"2004-02-{d:02d}" for d in range(1, 8)]),
                        sources=np.asarray(["a"] * 6 + ["b", "c", "d", "e"]))
    found = concentration(rows)
    assert (found.requests, found.top_request_share, found.top_time_share) == (5, 0.6, 0.3)


def test_the_gate_refuses_a_holdout_dominated_by_one_source() -> None:
    truth = np.arange(10, dtype=np.float32)
    better = truth + 0.1
    rows = TrainingData(x=truth[:, None], y=truth[:, None], dates=np.asarray([f"t{i}" for i in range(10)]),
                        sources=np.asarray(["forged"] * 7 + ["x", "y", "z"]))
    refused = decide(truth, truth + 1, better, concentration=concentration(rows), max_share=0.5)
    assert not refused.promote and "70%" in refused.reason and refused.holdout_top_request_share == 0.7
    allowed = decide(truth, truth + 1, better, concentration=concentration(rows), max_share=0.8)
    assert allowed.promote


def test_full_history_keeps_everything_unweighted() -> None:
    ts = build_training_set(data(DAYS), "full_history")
    assert len(ts) == 30 and ts.start == DAYS[0] and ts.end == DAYS[-1] and np.all(ts.weights == 1)


def test_sliding_window_by_rows_and_by_days() -> None:
    by_rows = build_training_set(data(DAYS), "sliding_window", window_rows=12)
    assert len(by_rows) == 12 and by_rows.start == DAYS[18] and by_rows.x[0, 0] == 18
    by_days = build_training_set(data(DAYS), "sliding_window", window_days=10)
    assert by_days.start == "2004-01-21" and by_days.end == "2004-01-30" and len(by_days) == 10


def test_gradual_forgetting_halves_the_weight_every_half_life() -> None:
    ts = build_training_set(data(DAYS), "gradual_forgetting", half_life=5)
    assert len(ts) == 30 and ts.weights[-1] == 1.0
    assert ts.weights[-6] == pytest.approx(0.5) and ts.weights[-11] == pytest.approx(0.25)
    assert np.all(np.diff(ts.weights) > 0)


@pytest.mark.parametrize(("strategy", "options", "needle"), [
    ("sliding_window", {}, "exactly one"),
    ("sliding_window", {"window_rows": 5, "window_days": 5}, "exactly one"),
    ("sliding_window", {"window_rows": 3}, "at least 10"),
    ("gradual_forgetting", {}, "half_life"),
    ("bogus", {}, "unknown strategy"),
])
def test_bad_options_fail_clearly(strategy: str, options: dict, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        build_training_set(data(DAYS), strategy, **options)  # type: ignore[arg-type]


def test_gate_refuses_worse_or_equal_and_honours_the_margin() -> None:
    truth = np.array([1.0, 2.0, 3.0, 4.0])
    champion = truth + 0.5
    assert not decide(truth, champion, truth + 0.6).promote
    assert not decide(truth, champion, champion).promote  # equal is not better
    better = decide(truth, champion, truth + 0.4)
    assert better.promote and better.champion == pytest.approx(0.5) and better.challenger == pytest.approx(0.4)
    assert not decide(truth, champion, truth + 0.4, margin=0.25).promote  # 20% better, 25% required
    assert decide(truth, champion, truth + 0.3, margin=0.25).promote
    assert "does not beat" in decide(truth, champion, truth + 0.6).reason
