"""The drift report: an HTML page with plots, made from the core's history and its last window."""

from __future__ import annotations

import base64
import html
import io
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from mitiga_detector.core import DetectorCore


def _png(fig: Figure) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode()


def render(core: DetectorCore, name: str) -> str:
    """Per-feature histograms (reference vs the last window), p-values and distances over time, performance over
    time. Raises KeyError when the model has no tested window yet."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    monitor, window, history = core.view.last(name)
    features = monitor.feature_names
    images = []
    fig = Figure(figsize=(4 * min(len(features), 4), 3 * ((len(features) + 3) // 4)))
    for j, feature in enumerate(features):
        ax = fig.add_subplot((len(features) + 3) // 4, min(len(features), 4), j + 1)
        ref, cur = monitor.reference[:, j], window.features[:, j]
        bins = np.histogram_bin_edges(np.concatenate([ref, cur]), bins=30).tolist()
        ax.hist(ref, bins=bins, density=True, alpha=0.5, label="reference")
        ax.hist(cur, bins=bins, density=True, alpha=0.5, label="current")
        ax.set_title(feature, fontsize=9)
    fig.axes[0].legend(fontsize=8)
    images.append(("Reference vs current window", _png(fig)))
    fig = Figure(figsize=(10, 6))
    top, bottom = fig.add_subplot(2, 1, 1), fig.add_subplot(2, 1, 2)
    for feature in features:
        top.plot([h["p_values"][feature] for h in history], label=f"p {feature}")
        bottom.plot([h["psi"][feature] for h in history], label=f"PSI {feature}")
    top.set_yscale("log")
    top.set_ylabel("p-value")
    bottom.set_ylabel("PSI")
    bottom.set_xlabel("window")
    top.legend(fontsize=7)
    images.append(("p-values and distances over time", _png(fig)))
    perf = [(i, h) for i, h in enumerate(history) if "mae" in h]
    if perf:
        fig = Figure(figsize=(10, 3))
        ax = fig.add_subplot(1, 1, 1)
        for metric in ("mae", "rmse", "r2"):
            ax.plot([i for i, _ in perf], [h[metric] for _, h in perf], label=metric)
        ax.legend()
        ax.set_xlabel("window")
        images.append(("Performance over time", _png(fig)))
    last = history[-1] if history else {}
    rows = "".join(f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(str(v))}</td></tr>"
                   for k, v in last.items() if not isinstance(v, dict))
    body = "".join(f"<h2>{html.escape(title)}</h2><img src='data:image/png;base64,{data}'/>" for title, data in images)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>mitiga drift report: {html.escape(name)}"
            f"</title></head><body><h1>Drift report: {html.escape(name)} v{html.escape(monitor.manifest.version)}"
            f"</h1><table>{rows}</table>{body}</body></html>")
