"""The Grafana dashboard: the research app's six panels (drift detected, % drifted features, MAE, RMSE, R²,
KS p-value), each with its warning / critical levels as read from the detector, plus inference latency and
throughput, consumer lag and retrains, and the classifiers' accuracy, F1, CBPE estimate and per-class recall.

``python -m mitiga_devstack.dashboard > dashboard.json`` prints it; the chart ships it as
``charts/mitiga/files/grafana-dashboard.json`` (a test keeps that file equal to this output).
"""

from __future__ import annotations

import json
import sys
from typing import Any

MODEL = 'model=~"$model"'
CLASSIFIER_SIGNALS = ("error_rate_ratio", "log_loss_ratio", "estimated_error_rate_ratio")
"""The signals of the classifiers' panels (a dashboard of forecasters and regressors leaves those panels empty)."""


def _levels(metric: str) -> list[dict[str, str]]:
    return [{"expr": f'max by (severity) (mitiga_drift_threshold{{{MODEL},metric="{metric}"}})',
             "legendFormat": "{{severity}} level"}]


def _panel(title: str, targets: list[dict[str, str]], x: int, y: int, *, unit: str = "short", w: int = 8,
           description: str = "") -> dict[str, Any]:
    return {
        "type": "timeseries", "title": title, "description": description,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"h": 8, "w": w, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": [
            {"matcher": {"id": "byRegexp", "options": ".* level"},
             "properties": [{"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}}]}]},
        "targets": [{**t, "refId": chr(ord("A") + i)} for i, t in enumerate(targets)],
    }


def _metric(name: str) -> list[dict[str, str]]:
    return [{"expr": f'mitiga_drift_metric{{{MODEL},metric="{name}"}}', "legendFormat": "{{model}} v{{version}}"},
            *_levels(name)]


def build() -> dict[str, Any]:
    panels = [
        _panel("Drift detected", _metric("drift_flag"), 0, 0,
               description="1 when the univariate test (after correction) flagged the last window."),
        _panel("Drifted features", [
            {"expr": f'mitiga_drift_metric{{{MODEL},metric="share_drifted"}}', "legendFormat": "{{model}}"},
            *_levels("share_drifted")], 8, 0, unit="percentunit"),
        _panel("KS p-value (smallest feature)", _metric("ks_p_value"), 16, 0),
        _panel("MAE (labelled feedback)", _metric("mae"), 0, 8,
               description="In the units set by MITIGA_METRIC_UNITS (scaled by default)."),
        _panel("RMSE (labelled feedback)", _metric("rmse"), 8, 8),
        _panel("R² (labelled feedback)", _metric("r2"), 16, 8),
        _panel("Inference latency", [
            {"expr": f"histogram_quantile(0.99, sum by (le, model) (rate("
                     f"mitiga_inference_request_duration_seconds_bucket{{{MODEL}}}[5m])))", "legendFormat": "p99"},
            {"expr": f"histogram_quantile(0.5, sum by (le, model) (rate("
                     f"mitiga_inference_request_duration_seconds_bucket{{{MODEL}}}[5m])))", "legendFormat": "p50"},
        ], 0, 16, unit="s"),
        _panel("Inference throughput", [
            {"expr": f"sum by (model) (rate(mitiga_inference_requests_total{{{MODEL}}}[5m]))",
             "legendFormat": "{{model}} requests/s"},
            {"expr": f'sum by (model) (rate(mitiga_inference_errors_total{{{MODEL}}}[5m]))',
             "legendFormat": "{{model}} errors/s"},
        ], 8, 16, unit="reqps"),
        _panel("Detector consumer lag", [
            {"expr": "sum by (topic) (mitiga_consumer_lag)", "legendFormat": "{{topic}}"}], 16, 16),
        _panel("Retrains", [
            {"expr": f"sum by (model, outcome) (increase(mitiga_retrain_outcomes_total{{{MODEL}}}[1h]))",
             "legendFormat": "{{model}} {{outcome}}"},
            {"expr": f"sum by (model, outcome) (increase(mitiga_retrain_triggers_total{{{MODEL}}}[1h]))",
             "legendFormat": "{{model}} trigger {{outcome}}"},
        ], 0, 24, w=16),
        _panel("Classifiers: accuracy and macro F1 (labelled feedback)", [
            {"expr": f'mitiga_model_performance{{{MODEL},metric="accuracy",units="original"}}',
             "legendFormat": "{{model}} v{{version}} accuracy"},
            {"expr": f'mitiga_model_performance{{{MODEL},metric="f1",units="original"}}',
             "legendFormat": "{{model}} v{{version}} macro F1"},
            {"expr": f'1 - mitiga_estimated_metric{{{MODEL},metric="error_rate"}}',
             "legendFormat": "{{model}} v{{version}} accuracy estimated before labels (CBPE)"},
        ], 0, 32, unit="percentunit",
            description="Realised on the labelled window, and estimated from the model's calibrated confidence "
                        "before the labels come."),
        _panel("Classifiers: error rate and log loss over validation", [
            *_metric("error_rate_ratio"),
            {"expr": f'mitiga_drift_metric{{{MODEL},metric="log_loss_ratio"}}',
             "legendFormat": "{{model}} v{{version}} log loss ratio"},
            {"expr": f'mitiga_drift_metric{{{MODEL},metric="estimated_error_rate_ratio"}}',
             "legendFormat": "{{model}} v{{version}} estimated error rate ratio"},
        ], 8, 32, description="1 = as on the model's own validation; the levels are error_rate_ratio's."),
        _panel("Classifiers: recall per class", [
            {"expr": f'mitiga_model_performance{{{MODEL},metric=~"recall_.*",units="original"}}',
             "legendFormat": "{{model}} v{{version}} {{metric}}"},
        ], 16, 32, unit="percentunit",
            description="recall_<i>: the share of class i's rows predicted as class i (i as in the model's classes)."),
        _panel("Ground truth", [
            {"expr": f"sum by (model) (rate(mitiga_feedback_joined_total{{{MODEL}}}[5m]))",
             "legendFormat": "{{model}} joined/s"},
            {"expr": f"sum by (model, reason) (rate(mitiga_feedback_unmatched_total{{{MODEL}}}[5m]))",
             "legendFormat": "{{model}} unmatched/s ({{reason}})"},
            {"expr": "sum(mitiga_feedback_parked)", "legendFormat": "waiting for their prediction"},
        ], 16, 24),
    ]
    return {
        "title": "mitiga: model drift", "uid": "mitiga-drift", "schemaVersion": 39, "version": 1,
        "tags": ["mitiga"], "timezone": "browser", "refresh": "30s", "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": [
            {"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Data source"},
            {"name": "model", "type": "query", "label": "Model", "includeAll": True, "multi": True,
             "datasource": {"type": "prometheus", "uid": "${datasource}"},
             "query": {"query": "label_values(mitiga_drift_metric, model)", "refId": "models"},
             "refresh": 2, "current": {"text": "All", "value": "$__all"}},
        ]},
        "panels": [{**p, "id": i + 1} for i, p in enumerate(panels)],
    }


def render() -> str:
    return json.dumps(build(), indent=2) + "\n"


def queries() -> list[str]:
    """Every panel query, with the model variable set to match all (for validation against Prometheus)."""
    return [t["expr"].replace("$model", ".*") for p in build()["panels"] for t in p["targets"]]


if __name__ == "__main__":
    sys.stdout.write(render())
