"""A date-range forecast through the inference service's REST API, as the research app's prediction page did: every
day of [start, end] is predicted from the window of actual values before it, and scored with MAE and RMSE. The
CLI's ``forecast`` and the console's forecast page both use it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mitiga_core.metrics import regression_metrics

if TYPE_CHECKING:
    import httpx
    import pandas as pd

CHUNK = 256  # rows per request


class ForecastError(ValueError):
    """The forecast cannot be made; the message says why, for the user."""


@dataclass(frozen=True)
class Forecast:
    model: str
    version: str
    dates: list[str]  # ISO dates of the forecast days
    actual: list[float]
    predicted: list[float]
    metrics: dict[str, float]  # mae, rmse, ...


def _answer(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = {}
    if response.status_code != 200:
        raise ForecastError(str(body.get("error", response.text)) if isinstance(body, dict) else response.text)
    return dict(body)


def forecast_series(client: httpx.Client, model: str, series: pd.Series, start: str | None = None,
                    end: str | None = None) -> Forecast:
    """Forecast ``series`` (a float Series on a date index) with ``model`` served by the inference service that
    ``client`` (with its ``base_url``) reaches."""
    import httpx
    import pandas as pd

    try:
        meta = _answer(client.get(f"/v2/models/{model}", timeout=30))
    except httpx.HTTPError as exc:
        raise ForecastError(f"cannot reach the inference service at {client.base_url}: {exc}") from None
    window = meta.get("parameters", {}).get("window")
    if not window:
        raise ForecastError(f"model {model!r} is not a forecast model")
    values, index = series.to_numpy(np.float32), series.index
    targets = [i for i in range(int(window), len(series))
               if (start is None or index[i] >= pd.Timestamp(start)) and (end is None or index[i] <= pd.Timestamp(end))]
    if not targets:
        raise ForecastError(f"no dates to forecast between {start or 'the start'} and {end or 'the end'} with a "
                            f"window of {window}")
    predictions: list[float] = []
    version = str(meta.get("versions", [""])[-1] if meta.get("versions") else "")
    for lo in range(0, len(targets), CHUNK):
        chunk = targets[lo:lo + CHUNK]
        x = np.stack([values[i - int(window):i] for i in chunk])
        body = {"inputs": [{"name": "window", "shape": list(x.shape), "datatype": "FP32",
                            "data": x.reshape(-1).tolist()}]}
        try:
            answer = _answer(client.post(f"/v2/models/{model}/infer", json=body, timeout=120))
        except httpx.HTTPError as exc:
            raise ForecastError(f"the inference service failed: {exc}") from None
        predictions.extend(float(v) for v in answer["outputs"][0]["data"])
        version = str(answer.get("model_version", version))
    actual = values[targets].astype(np.float64)
    metrics = regression_metrics(actual, np.asarray(predictions))
    return Forecast(model=model, version=version, dates=[index[i].date().isoformat() for i in targets],
                    actual=actual.tolist(), predicted=predictions, metrics={k: float(v) for k, v in metrics.items()})
