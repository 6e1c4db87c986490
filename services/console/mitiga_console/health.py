"""A model's health on its page: the detector's latest verdict, then its windows over time with the realised and
estimated error and the new versions and retrains marked on the same axis. The history is read from Prometheus'
HTTP API when the console has one (``MITIGA_PROMETHEUS_URL``): it outlives detector restarts and covers every
replica. Otherwise it comes from the detector's own window history."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mitiga_console import html
from mitiga_console.upstream import UpstreamError

if TYPE_CHECKING:
    from mitiga_console.upstream import Series, Upstream

POINTS = 240  # samples per line read from Prometheus
ERRORS = ("mae", "rmse", "r2", "estimated_mae", "accuracy", "f1", "log_loss", "estimated_error_rate")
LEVELS = {"none": 0.0, "warning": 1.0, "critical": 2.0}  # as the detector's mitiga_drift_level gauge counts them
TITLES = {"p-values": "p-value per feature", "distances": "PSI per feature",
          "errors": "realised and estimated error (MAE; a classifier's accuracy)",
          "levels": "drift level per type (1 warning, 2 critical)"}


def day(stamp: str | None) -> str:
    """The date of an ISO timestamp ("2015-07-09T00:00:00+00:00" -> "2015-07-09")."""
    return (stamp or "?")[:10]


def render(upstream: Upstream, name: str) -> str:
    try:
        state = upstream.drift(name)
    except UpstreamError as exc:
        return html.error(str(exc))
    if not state or not state.get("last_window"):
        return '<p id="health">No window tested yet.</p>'
    last = state["last_window"]
    features = html.table(["feature", "p-value", "PSI"], [
        [html.esc(f), html.pretty(p), html.pretty(last.get("psi", {}).get(f))]
        for f, p in last.get("p_values", {}).items()], "features")
    signals = ", ".join(f"{html.esc(s)} {html.level(v)}" for s, v in sorted(last.get("signals", {}).items()))
    errors = _errors(last)
    deciding = "; ".join(f'{html.esc(r["signal"])} {html.pretty(r["value"])} '
                         f'({html.esc(">=" if r.get("direction") == "above" else "<")} {html.pretty(r["threshold"])})'
                         for r in last.get("deciding", [])) or "-"
    over_time = _from_prometheus(upstream, name) if upstream.prometheus is not None else _from_detector(upstream, name)
    return (f'<p id="health">Level {html.level(state["level"])} ({html.esc(", ".join(last.get("types", [])))}), '
            f'decided by <span id="deciding">{deciding}</span>; {state["windows"]} windows tested; last '
            f'{html.esc(last["window_start"])} .. {html.esc(last["window_end"])}.</p>'
            f"<p>Signals: {signals or '-'}</p><p>Error: {errors or 'no ground truth yet'}</p>{_confusion(last)}"
            f"{features}"
            f"{over_time}"
            f'<p><a href="/models/{html.esc(name)}/report">drift report with plots over time</a></p>')


def _errors(window: dict[str, Any]) -> str:
    """The realised errors in the model's own units (MAE 1.93 USD), the classifier's scores as they are; the values
    in the detector's scaled units, as its levels read them, on hover."""
    units = html.esc(window.get("units") or "")
    shown = [f'<span title="scaled: {html.pretty(window.get(k))}">{k.upper()} {html.pretty(v)}'
             f'{" " + units if units and k in ("mae", "rmse") else ""}</span>'
             for k, v in sorted((window.get("in_units") or {}).items()) if k in ("mae", "rmse", "r2")]
    shown += [f"{k} {html.pretty(window[k])}" for k in ERRORS if k in window and k not in ("mae", "rmse", "r2")]
    if not shown:  # a window recorded before errors were kept in the model's units
        shown = [f"{k} {html.pretty(window[k])} (scaled)" for k in ("mae", "rmse", "r2") if k in window]
    return ", ".join(shown)


def _confusion(window: dict[str, Any]) -> str:
    """A classifier's confusion matrix on its labelled window: a row per true class, a column per predicted one."""
    matrix, classes = window.get("confusion"), window.get("classes")
    if not matrix or not classes:
        return ""
    rows = [[f"<b>{html.esc(c)}</b>", *(html.esc(n) for n in row)] for c, row in zip(classes, matrix, strict=True)]
    return ("<h4>Confusion matrix (labelled window; rows: true class, columns: predicted)</h4>"
            + html.table(["true \\ predicted", *classes], rows, "confusion"))


def _charts(lines: dict[str, dict[str, list[float]]], dates: list[str], marks: list[int],
            events: dict[str, list[int]] | None = None) -> str:
    """The charts over time, each under its heading: ``lines`` maps a chart's id to its lines (p-values first:
    it is drawn even when empty, so a reader sees the axis)."""
    charts = "<h3>Over time</h3>"
    for chart_id, series in lines.items():
        if chart_id == "p-values" or any(math.isfinite(v) for line in series.values() for v in line):
            charts += (f"<h4>{html.esc(TITLES[chart_id])}</h4>"
                       + html.chart(series, dates, chart_id=chart_id, height=200, marks=marks, events=events))
    changes = ", ".join(dates[i] for i in marks)
    return charts + (f'<p id="version-changes">New versions from {changes}.</p>' if marks else "")


def _from_detector(upstream: Upstream, name: str) -> str:
    """One point per window the detector tested (on the data's own time axis); a mark where the version that
    answered changed (a retrain promoted, or a rollback)."""
    try:
        windows = upstream.history(name)
    except UpstreamError as exc:
        return html.error(str(exc))
    if len(windows) < 2:
        return ""
    ends = [day(w.get("window_end")) for w in windows]
    features = sorted({f for w in windows for f in w.get("p_values", {})})
    p_values = {f"p {f}": [float(w.get("p_values", {}).get(f, math.nan)) for w in windows] for f in features}
    psi = {f"PSI {f}": [float(w.get("psi", {}).get(f, math.nan)) for w in windows] for f in features}
    errors = {label: [float(w.get(key, math.nan)) for w in windows]
              for key, label in (("mae", "MAE"), ("estimated_mae", "estimated MAE"), ("accuracy", "accuracy"))}
    errors["estimated accuracy"] = [1.0 - float(w.get("estimated_error_rate", math.nan)) for w in windows]
    kinds = sorted({t for w in windows for t in w.get("types", [])})
    levels = {kind: [LEVELS.get(w.get("level", "none"), 0.0) if kind in w.get("types", []) else 0.0
                     for w in windows] for kind in kinds}
    marks = [i for i in range(1, len(windows)) if windows[i].get("version") != windows[i - 1].get("version")]
    return (f'<p id="health-source">From the detector\'s last {len(windows)} windows.</p>'
            + _charts({"p-values": p_values, "distances": psi, "errors": errors, "levels": levels}, ends, marks))


def _from_prometheus(upstream: Upstream, name: str) -> str:
    """The last ``health_range_s`` of the model's gauges, from its first tested window on, on the wall-clock axis;
    marks where a version's windows begin and where a retrain ended (by outcome)."""
    end = round(time.time(), 3)  # milliseconds, as Prometheus counts them: the last point is evaluated at ``end``
    begin = end - upstream.health_range_s
    selector = f'model="{name}"'  # model names are [a-z0-9-]: nothing to escape
    coarse = upstream.health_range_s / POINTS
    try:
        seen = upstream.query_range(f"max(mitiga_drift_window_rows{{{selector}}})", begin, end, coarse)
        if not seen:
            return ('<p id="health-source">Prometheus has no window of this model in the last '
                    f"{upstream.health_range_s / 3600:g} h.</p>")
        # the coarse step before the first point with data had none: the first sample came after it
        start = max(begin, min(t for s in seen for t, _ in s.points) - coarse)
        step = max(round((end - start) / POINTS, 3), 1.0)
        size = math.ceil((end - start) / step) + 1
        start = round(end - (size - 1) * step, 3)  # on a grid that ends at ``end``: the page shows the state now

        def lines(query: str, label: str, name_of: Any) -> dict[str, list[float]]:
            return {name_of(s.labels): _on(s, start, step, size)
                    for s in upstream.query_range(query, start, end, step)} or {label: [math.nan] * size}

        p_values = lines(f"min by (feature) (mitiga_drift_p_value{{{selector}}})", "p",
                         lambda labels: f"p {labels.get('feature', '?')}")
        psi = lines(f"max by (feature) (mitiga_drift_psi{{{selector}}})", "PSI",
                    lambda labels: f"PSI {labels.get('feature', '?')}")
        levels = lines(f"max by (drift_type) (mitiga_drift_level{{{selector}}})", "level",
                       lambda labels: labels.get("drift_type", "?"))
        errors = lines(f'max(mitiga_model_performance{{{selector},metric="mae"}})', "MAE", lambda _: "MAE")
        errors |= lines(f'max(mitiga_estimated_metric{{{selector},metric="mae"}})', "estimated MAE",
                        lambda _: "estimated MAE")
        errors |= lines(f'max(mitiga_model_performance{{{selector},metric="accuracy",units="original"}})', "accuracy",
                        lambda _: "accuracy")
        errors |= lines(f'1 - max(mitiga_estimated_metric{{{selector},metric="error_rate"}})', "estimated accuracy",
                        lambda _: "estimated accuracy")
        versions = upstream.query_range(f"max by (version) (mitiga_drift_window_rows{{{selector}}})", start, end,
                                        step)
        outcomes = upstream.query_range(f"sum by (outcome) (mitiga_retrain_outcomes_total{{{selector}}})", start,
                                        end, step)
    except UpstreamError as exc:
        return html.error(str(exc))
    firsts = sorted(_index(s.points[0][0], start, step) for s in versions if s.points)
    marks = sorted({i for i in firsts if i > firsts[0]}) if firsts else []  # where a later version's windows begin
    events = {s.labels.get("outcome", "?"): _rises(_on(s, start, step, size)) for s in outcomes}
    dates = [_clock(start + i * step, end - start) for i in range(size)]
    return (f'<p id="health-source">From Prometheus, {_clock(start, end - start)} .. {_clock(end, end - start)} '
            "UTC.</p>" + _charts({"p-values": p_values, "distances": psi, "errors": errors, "levels": levels}, dates,
                                 marks, {k: v for k, v in events.items() if v}))


def _index(t: float, start: float, step: float) -> int:
    return max(0, round((t - start) / step))


def _on(series: Series, start: float, step: float, size: int) -> list[float]:
    """A series' samples on the shared axis; NaN where it has none."""
    values = [math.nan] * size
    for t, v in series.points:
        i = _index(t, start, step)
        if i < size:
            values[i] = v
    return values


def _rises(counter: list[float]) -> list[int]:
    """Where a counter went up, counting its first sample after a gap as a rise (it was created by that rise)."""
    rises, before = [], math.nan
    for i, v in enumerate(counter):
        if math.isfinite(v) and (not math.isfinite(before) or v > before) and (math.isfinite(before) or i > 0):
            rises.append(i)
        if math.isfinite(v):
            before = v
    return rises


def _clock(t: float, span_s: float) -> str:
    stamp = datetime.fromtimestamp(t, UTC)
    return stamp.strftime("%H:%M:%S" if span_s < 86_400 else "%Y-%m-%d %H:%M")
