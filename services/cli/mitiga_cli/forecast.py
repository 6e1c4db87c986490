"""``mitiga forecast``: a date-range forecast on a CSV through the inference service, with MAE/RMSE and a chart
(the research app's prediction page)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from mitiga_cli.models import UrlOption, console, fail


def forecast(
    model: Annotated[str, typer.Argument(help="The forecast model's name")],
    csv: Annotated[Path, typer.Argument(help="CSV with a Date column and the series column")],
    column: Annotated[str, typer.Option(help="The series column")] = "Open",
    start: Annotated[str | None, typer.Option(help="First date to forecast")] = None,
    end: Annotated[str | None, typer.Option(help="Last date to forecast")] = None,
    url: UrlOption = "http://127.0.0.1:8080",
    out: Annotated[Path, typer.Option(help="Chart to write")] = Path("forecast.png"),
) -> None:
    """Forecast every day of [start, end] from the previous window of actual values; report MAE and RMSE."""
    import httpx
    import numpy as np
    import pandas as pd

    from mitiga_core.forecasting import ForecastError, forecast_series

    if not csv.is_file():
        raise fail(f"no such file: {csv}")
    frame = pd.read_csv(csv)
    date_column = next((c for c in frame.columns if c.lower() == "date"), None)
    if date_column is None or column not in frame.columns:
        raise fail(f"{csv} needs a Date column and a {column!r} column; it has {list(frame.columns)}")
    series = frame.set_index(pd.to_datetime(frame[date_column]))[column].astype("float64").sort_index()
    try:
        with httpx.Client(base_url=url) as client:
            result = forecast_series(client, model, series, start, end)
    except ForecastError as exc:
        raise fail(str(exc)) from None
    dates = pd.to_datetime(result.dates)
    _chart(dates, np.asarray(result.actual), np.asarray(result.predicted), model, out)
    console.print(f"{model}: {len(dates)} days {result.dates[0]} .. {result.dates[-1]}  "
                  f"MAE {result.metrics['mae']:.4g}  RMSE {result.metrics['rmse']:.4g}  (chart: {out})")


def _chart(dates: Any, actual: Any, predicted: Any, model: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4))
    ax.plot(dates, actual, label="actual", lw=1)
    ax.plot(dates, predicted, label=f"forecast ({model})", lw=1)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
