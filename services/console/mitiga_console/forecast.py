"""The forecast page: pick a forecast model and a date range of a shipped series (or an uploaded CSV with a Date
column), see the predictions against the truth with MAE and RMSE. The predictions come from the inference service's
REST API, as any client's would."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Annotated

import anyio
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from mitiga_console import html
from mitiga_console.pages import page, render
from mitiga_core.forecasting import ForecastError, forecast_series

if TYPE_CHECKING:
    import pandas as pd
    from starlette.datastructures import FormData

    from mitiga_console.settings import ConsoleSettings
    from mitiga_console.upstream import Upstream
    from mitiga_core.store import ModelStore

SERIES = {"amzn": "Amazon, daily open (USD)", "goog": "Alphabet, daily open (USD)"}
MAX_CSV_BYTES = 20 * 1024 * 1024


def _shipped(name: str) -> pd.Series:
    from mitiga_research.datasets import load_prices

    frame = load_prices(name)  # type: ignore[arg-type]
    return frame["open"].astype("float64")


def _csv(data: bytes, column: str) -> pd.Series:
    import pandas as pd

    frame = pd.read_csv(io.BytesIO(data))
    date = next((c for c in frame.columns if str(c).lower() == "date"), None)
    if date is None or column not in frame.columns:
        raise ForecastError(f"csv: needs a Date column and a {column!r} column; it has {list(frame.columns)}")
    return frame.set_index(pd.to_datetime(frame[date]))[column].astype("float64").sort_index()


def _form(models: list[str], model: str | None, series: str, start: str, end: str) -> str:
    return ('<form method="get" action="/forecast" id="forecast-form">'
            f'<label>model <select name="model">{html.options(models, model)}</select></label>'
            f'<label>series <select name="series">{html.options(SERIES, series)}</select></label>'
            f'<label>from <input type="date" name="start" value="{html.esc(start)}"></label>'
            f'<label>to <input type="date" name="end" value="{html.esc(end)}"></label>'
            "<button>forecast</button></form>"
            '<form method="post" action="/forecast" enctype="multipart/form-data" id="forecast-csv">'
            f'<label>or a CSV with a Date column <input type="file" name="file" accept=".csv"></label>'
            '<label>column <input name="column" value="Open"></label>'
            f'<input type="hidden" name="model" value="{html.esc(model or "")}">'
            "<button>forecast the CSV</button></form>")


def _result(upstream: Upstream, model: str, series: pd.Series, start: str | None, end: str | None,
            label: str) -> str:
    try:
        done = forecast_series(upstream.inference, model, series, start or None, end or None)
    except ForecastError as exc:
        return html.error(str(exc))
    summary = (f'<p id="forecast-summary">{html.esc(model)} v{html.esc(done.version)} on {html.esc(label)}: '
               f"{len(done.dates)} days {html.esc(done.dates[0])} .. {html.esc(done.dates[-1])}, "
               f'MAE <strong id="mae">{done.metrics["mae"]:.4g}</strong>, '
               f'RMSE <strong id="rmse">{done.metrics["rmse"]:.4g}</strong></p>')
    return summary + html.chart({"actual": done.actual, f"forecast ({model})": done.predicted}, done.dates,
                                chart_id="forecast")


def build_router(settings: ConsoleSettings, store: ModelStore, upstream: Upstream) -> APIRouter:
    router = APIRouter()

    def forecast_models() -> list[str]:
        from mitiga_core.bundle import read_manifest

        found = []
        for name in store.list_models():
            champion = store.champion(name)
            if champion and read_manifest(store.path(name, champion)).kind.input_layout == "window":
                found.append(name)
        return found

    @router.get("/forecast", response_class=HTMLResponse)
    def forecast(request: Request, model: Annotated[str | None, Query()] = None,
                 series: Annotated[str, Query()] = "amzn", start: Annotated[str, Query()] = "",
                 end: Annotated[str, Query()] = "") -> HTMLResponse:
        models = forecast_models()
        body = _form(models, model, series, start, end)
        if not models:
            body = '<p class="notice">No forecast model is deployed.</p>'
        elif model is not None:
            if series not in SERIES:
                return page(request, upstream, "Forecast", html.error(f"series: one of {sorted(SERIES)}") + body,
                             422)
            if model not in models:
                return page(request, upstream, "Forecast",
                             html.error(f"model: {model!r} is not a deployed forecast model") + body, 404)
            body += _result(upstream, model, _shipped(series), start, end, SERIES[series])
        return page(request, upstream, "Forecast", body)

    @router.post("/forecast", response_class=HTMLResponse)
    async def forecast_csv(request: Request) -> HTMLResponse:
        form = await request.form(max_files=1, max_fields=4)
        try:
            return await _forecast_csv(request, form)
        finally:
            await form.close()  # the spooled files

    async def _forecast_csv(request: Request, form: FormData) -> HTMLResponse:
        file, model, column = form.get("file"), str(form.get("model") or ""), str(form.get("column") or "Open")
        models = await anyio.to_thread.run_sync(forecast_models)
        body = _form(models, model, "amzn", "", "")
        if file is None or isinstance(file, str) or model not in models:
            return await render(request, upstream, "Forecast",
                                html.error("choose a forecast model and a CSV") + body, 422)
        data = await file.read(MAX_CSV_BYTES + 1)
        if len(data) > MAX_CSV_BYTES:
            return await render(request, upstream, "Forecast", html.error("csv: larger than 20 MB") + body, 413)
        try:
            series = _csv(data, column)
        except (ForecastError, ValueError) as exc:
            return await render(request, upstream, "Forecast", html.error(str(exc)) + body, 422)
        label = file.filename or "the CSV"
        result = await anyio.to_thread.run_sync(lambda: _result(upstream, model, series, None, None, label))
        return await render(request, upstream, "Forecast", body + result)

    return router
