from __future__ import annotations

import numpy as np
import pytest
from mitiga_research.datasets import AIR_QUALITY_FEATURES, load_air_quality, load_prices, sliding_windows


def test_prices_are_sorted_daily_ohlcv() -> None:
    amzn = load_prices("amzn")
    assert list(amzn.columns) == ["open", "high", "low", "close", "volume"]
    assert amzn.index.is_monotonic_increasing and len(amzn) == 5153
    assert str(amzn.index[0].date()) == "1997-05-16"
    assert len(load_prices("goog")) == 916


def test_air_quality_marks_missing_values() -> None:
    air = load_air_quality()
    assert len(air) == 9357
    assert set(AIR_QUALITY_FEATURES) <= set(air.columns) and "CO(GT)" in air.columns
    assert not (air == -200).any().any()
    assert air["CO(GT)"].isna().sum() > 1000  # the -200 cells became NaN
    assert air["CO(GT)"].iloc[0] == pytest.approx(2.6)  # decimal comma parsed
    assert str(air.index[0]) == "2004-03-10 18:00:00"


def test_sliding_windows() -> None:
    x, y = sliding_windows(np.arange(6, dtype=np.float32), 3)
    np.testing.assert_array_equal(x, [[0, 1, 2], [1, 2, 3], [2, 3, 4]])
    np.testing.assert_array_equal(y, [3, 4, 5])
    with pytest.raises(ValueError, match="more than 3"):
        sliding_windows(np.arange(3, dtype=np.float32), 3)
