"""The console's HTML: one layout, tables, a banner, and a line chart drawn as SVG on the server. Every style is
inline in the page and nothing is fetched from elsewhere, so the console works with no internet. Every value put
in a page goes through :func:`esc`."""

from __future__ import annotations

import html
import json
import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from mitiga_console.upstream import Alert

STYLE = """
body{font-family:system-ui,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
nav{background:#1d2330;padding:.6rem 1.2rem;display:flex;gap:1.2rem;align-items:center}
nav a{color:#e8ebf1;text-decoration:none}nav .who{margin-left:auto;color:#9aa3b5;font-size:.9rem}
main{padding:1rem 1.4rem;max-width:1100px}
table{border-collapse:collapse;background:#fff;margin:.6rem 0}
td,th{border:1px solid #d9dde5;padding:.3rem .6rem;text-align:left;font-size:.92rem}
.banner{padding:.7rem 1.2rem;background:#b3261e;color:#fff}.banner a{color:#fff;font-weight:bold}
.notice{padding:.5rem .8rem;background:#fff4ce;border:1px solid #e6c84f;margin:.6rem 0}
.error{padding:.5rem .8rem;background:#fde7e7;border:1px solid #d9534f;margin:.6rem 0}
.level-critical{color:#b3261e;font-weight:bold}.level-warning{color:#a15c00;font-weight:bold}
form{background:#fff;padding:.8rem;border:1px solid #d9dde5;margin:.6rem 0;display:inline-block}
label{display:block;margin:.3rem 0}svg{background:#fff;border:1px solid #d9dde5}
"""


def esc(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def table(headers: Sequence[str], rows: Iterable[Sequence[object]], table_id: str = "") -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    ident = f' id="{esc(table_id)}"' if table_id else ""
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def level(name: str | None) -> str:
    name = name or "none"
    return f'<span class="level-{esc(name)}">{esc(name)}</span>'


def banner(alerts: Sequence[Alert]) -> str:
    """The critical banner: one line per model with a critical alert, linking to its retrain form."""
    critical = sorted({a.model or "" for a in alerts if a.severity == "critical"})
    if not critical:
        return ""
    links = ", ".join(f'<a href="/models/{esc(m)}#retrain">retrain {esc(m)}</a>' if m else "see the alerts"
                      for m in critical)
    return (f'<div class="banner" id="critical-banner">Critical alert firing for '
            f'{esc(", ".join(m or "mitiga" for m in critical))}: {links}</div>')


def layout(title: str, body: str, *, alerts: Sequence[Alert] = (), signed_in: bool = False,
           refresh_s: float | None = None) -> str:
    refresh = f'<meta http-equiv="refresh" content="{refresh_s:g}">' if refresh_s else ""
    who = ('<form method="post" action="/logout" style="display:inline;padding:0;border:0;margin:0;'
           'background:none"><button>sign out</button></form>') if signed_in else '<a href="/login">sign in</a>'
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(title)} · mitiga</title>{refresh}
<meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="data:,">
<style>{STYLE}</style></head>
<body><nav><strong style="color:#fff">mitiga</strong><a href="/">Models</a><a href="/alerts">Alerts</a>
<a href="/forecast">Forecast</a><a href="/upload">Upload</a><span class="who">{who}</span></nav>
{banner(alerts)}<main><h1>{esc(title)}</h1>{body}</main></body></html>"""


def chart(series: Mapping[str, Sequence[float]], dates: Sequence[str], *, chart_id: str = "chart",
          width: int = 960, height: int = 320, marks: Sequence[int] = (),
          events: Mapping[str, Sequence[int]] | None = None) -> str:
    """Lines on a shared date axis, as SVG, with the data also in a JSON script element for whoever reads the
    page (a test, a script) and a tooltip on each line; ``marks``: indexes of the dates to mark with a vertical
    line (a new version); ``events``: more indexes to mark, by what happened there (a retrain's outcome). Missing
    values (NaN) are left out of the lines."""
    events = dict(events or {})
    values = [v for line in series.values() for v in line if math.isfinite(v)]
    lines_data = {name: [v if math.isfinite(v) else None for v in line] for name, line in series.items()}
    data = json.dumps({"dates": list(dates), "marks": list(marks), "events": events, **lines_data}
                      ).replace("</", "<\\/")
    if not values or not dates:
        return f'<script type="application/json" id="{esc(chart_id)}-data">{data}</script>'
    lo, hi = min(values), max(values)
    hi = hi if hi > lo else lo + 1.0
    pad, n = 40, max(len(dates) - 1, 1)

    def point(i: int, v: float) -> str:
        return f"{pad + i * (width - 2 * pad) / n:.1f},{height - pad - (v - lo) * (height - 2 * pad) / (hi - lo):.1f}"

    colours = ["#1d2330", "#d9534f", "#2b7bb9", "#5cb85c"]
    lines, legend = [], []
    for k, (name, line) in enumerate(series.items()):
        colour = colours[k % len(colours)]
        path = " ".join(point(i, v) for i, v in enumerate(line) if math.isfinite(v))
        lines.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{path}">'
                     f"<title>{esc(name)}</title></polyline>")
        legend.append(f'<text x="{pad + k * 160}" y="16" fill="{colour}" font-size="13">{esc(name)}</text>')
    for i in marks:
        x = pad + i * (width - 2 * pad) / n
        lines.append(f'<line x1="{x:.1f}" y1="{pad - 10}" x2="{x:.1f}" y2="{height - pad}" stroke="#5cb85c" '
                     f'stroke-dasharray="4,3"><title>new version from {esc(dates[i])}</title></line>')
    for what, at in events.items():
        for i in at:
            x = pad + i * (width - 2 * pad) / n
            lines.append(f'<line x1="{x:.1f}" y1="{pad - 10}" x2="{x:.1f}" y2="{height - pad}" stroke="#a15c00" '
                         f'stroke-dasharray="1,3"><title>retrain {esc(what)} at {esc(dates[i])}</title></line>')
    axis = (f'<text x="{pad}" y="{height - 12}" font-size="12">{esc(dates[0])}</text>'
            f'<text x="{width - pad}" y="{height - 12}" font-size="12" text-anchor="end">{esc(dates[-1])}</text>'
            f'<text x="4" y="{pad}" font-size="12">{hi:.4g}</text>'
            f'<text x="4" y="{height - pad}" font-size="12">{lo:.4g}</text>')
    return (f'<svg id="{esc(chart_id)}" width="{width}" height="{height}" role="img" '
            f'aria-label="chart">{"".join(legend)}{"".join(lines)}{axis}</svg>'
            f'<script type="application/json" id="{esc(chart_id)}-data">{data}</script>')


def options(choices: Iterable[str], selected: str | None = None) -> str:
    return "".join(f'<option value="{esc(c)}"{" selected" if c == selected else ""}>{esc(c)}</option>'
                   for c in choices)


def error(message: str) -> str:
    return f'<div class="error" role="alert">{esc(message)}</div>'


def pretty(value: Any) -> str:
    if isinstance(value, float):
        return esc(f"{value:.4g}")
    return esc(value)
