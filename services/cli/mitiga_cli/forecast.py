"""``mitiga forecast``: a date-range forecast on a CSV through the inference service, with MAE/RMSE and a chart
(the research app's prediction page)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from mitiga_cli.models import UrlOption, console, fail


def forecast(
    model: str,
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

    from mitiga_core.metrics import regression_metrics

    if not csv.is_file():
        raise fail(f"no such file: {csv}")
    frame = pd.read_csv(csv)
    date_column = next((c for c in frame.columns if c.lower() == "date"), None)
    if date_column is None or column not in frame.columns:
        raise fail(f"{csv} needs a Date column and a {column!r} column; it has {list(frame.columns)}")
    series = frame.set_index(pd.to_datetime(frame[date_column]))[column].astype("float64").sort_index()
    try:
        meta = httpx.get(f"{url}/v2/models/{model}", timeout=30)
    except httpx.HTTPError as exc:
        raise fail(f"cannot reach {url}: {exc}") from None
    if meta.status_code != 200:
        raise fail(meta.json().get("error", meta.text))
    window = meta.json()["parameters"].get("window")
    if not window:
        raise fail(f"model {model!r} is not a forecast model")
    values, index = series.to_numpy(np.float32), series.index
    targets = [i for i in range(window, len(series))
               if (start is None or index[i] >= pd.Timestamp(start)) and (end is None or index[i] <= pd.Timestamp(end))]
    if not targets:
        raise fail(f"no dates to forecast between {start} and {end} with a window of {window}")
    predictions: list[float] = []
    for chunk in (targets[i : i + 256] for i in range(0, len(targets), 256)):
        x = np.stack([values[i - window : i] for i in chunk])
        body: dict[str, Any] = {"inputs": [{"name": "window", "shape": list(x.shape), "datatype": "FP32",
                                            "data": x.reshape(-1).tolist()}]}
        response = httpx.post(f"{url}/v2/models/{model}/infer", json=body, timeout=120)
        if response.status_code != 200:
            raise fail(response.json().get("error", response.text))
        predictions.extend(response.json()["outputs"][0]["data"])
    actual = values[targets]
    metrics = regression_metrics(actual, np.asarray(predictions))
    _chart(index[targets], actual, np.asarray(predictions), model, out)
    console.print(f"{model}: {len(targets)} days {index[targets[0]].date()} .. {index[targets[-1]].date()}  "
                  f"MAE {metrics['mae']:.4g}  RMSE {metrics['rmse']:.4g}  (chart: {out})")


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
