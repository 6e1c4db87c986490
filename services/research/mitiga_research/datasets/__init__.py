"""The real data sets vendored with mitiga (see ``datasets/data/README.md`` for provenance and licences)."""

from __future__ import annotations

from importlib import resources
from typing import Final, Literal

import numpy as np
import pandas as pd

from mitiga_core.types import FloatArray  # noqa: TC001

Ticker = Literal["amzn", "goog"]

AIR_QUALITY_TARGET: Final = "CO(GT)"
AIR_QUALITY_FEATURES: Final = [
    "PT08.S1(CO)", "PT08.S2(NMHC)", "PT08.S3(NOx)", "PT08.S4(NO2)", "PT08.S5(O3)", "T", "RH", "AH",
]
"""The five metal-oxide sensor responses, temperature, relative and absolute humidity."""


def _path(name: str) -> str:
    return str(resources.files("mitiga_research.datasets") / "data" / name)


def load_prices(ticker: Ticker = "amzn") -> pd.DataFrame:
    """Daily OHLCV indexed by date, columns lower-case (open, high, low, close, volume)."""
    frame = pd.read_csv(_path(f"{ticker}.us.txt"), parse_dates=["Date"], index_col="Date")
    frame = frame.drop(columns=["OpenInt"]).rename(columns=str.lower)
    frame.index.name = "date"
    return frame.sort_index()


def load_air_quality() -> pd.DataFrame:
    """Hourly UCI Air Quality rows indexed by timestamp; -200 becomes NaN; empty rows and columns dropped."""
    frame = pd.read_csv(_path("AirQualityUCI.csv"), sep=";", decimal=",", na_values=[-200, "-200"])
    frame = frame.loc[:, ~frame.columns.str.startswith("Unnamed")].dropna(subset=["Date", "Time"])
    stamp = pd.to_datetime(frame["Date"] + " " + frame["Time"], format="%d/%m/%Y %H.%M.%S")
    frame = frame.drop(columns=["Date", "Time"]).set_index(stamp)
    frame.index.name = "time"
    numeric: pd.DataFrame = frame.apply(pd.to_numeric, errors="coerce")
    return numeric.mask(numeric == -200)


def sliding_windows(values: FloatArray, window: int) -> tuple[FloatArray, FloatArray]:
    """Inputs of ``window`` consecutive values and the value after each: shapes (n, window), (n,)."""
    series = np.asarray(values, dtype=np.float32).reshape(-1)
    if len(series) <= window:
        raise ValueError(f"need more than {window} values for windows of {window}, got {len(series)}")
    x = np.lib.stride_tricks.sliding_window_view(series[:-1], window).copy()
    return x, series[window:].copy()
