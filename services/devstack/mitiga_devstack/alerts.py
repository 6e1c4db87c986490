"""The Prometheus alert rules of mitiga, generated from one place.

Metric thresholds are not written here: the detector exports each configured level as
``mitiga_drift_threshold{model,metric,severity,direction,drift_type}`` (the research defaults, or what
``MITIGA_THRESHOLDS`` / per-model overrides say), and the rules compare ``mitiga_drift_metric`` against it. So the
detector's decisions and the alerts read the same numbers. What is set here is how long a condition must hold
(``for``) and the service-level limits, from ``MITIGA_ALERT_*`` variables or flags.

``python -m mitiga_devstack.alerts > rules.yaml`` prints the rules; the chart ships the defaults in
``charts/mitiga/files/prometheus-rules.yaml`` (a test keeps that file equal to this output).
"""

from __future__ import annotations

import sys
from typing import Any

import yaml
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

SIGNALS: dict[str, str] = {
    "drift_flag": "the dataset drift flag of the univariate test",
    "share_drifted": "the share of drifted features",
    "ks_p_value": "the smallest per-feature p-value",
    "mae": "the mean absolute error on labelled feedback",
    "rmse": "the root mean squared error on labelled feedback",
    "r2": "the R² on labelled feedback",
    "mae_ratio": "the MAE on labelled feedback over the model's own validation MAE",
    "rmse_ratio": "the RMSE on labelled feedback over the model's own validation RMSE",
    "skill_ratio": "the MAE over the naive forecast's, relative to the same ratio on the model's validation rows",
    "mase": "the MAE over the naive forecast's (\"tomorrow = today\"): above 1 the model does worse than it",
    "estimated_mae_ratio": "the MAE estimated from the inputs (before labels) over the model's validation MAE",
    "concept": "the error-stream detector's alarm (1: the error rose)",
    "log_loss_ratio": "a classifier's log loss on labelled feedback over its own validation log loss",
    "error_rate_ratio": "a classifier's error rate (1 - accuracy) on labelled feedback over its validation error rate",
    "estimated_error_rate_ratio": "a classifier's error rate estimated before labels (CBPE) over its validation one",
    "accuracy": "a classifier's accuracy on labelled feedback",
    "f1": "a classifier's macro F1 on labelled feedback",
    "log_loss": "a classifier's log loss on labelled feedback",
    "mmd": "the multivariate MMD test's drift flag",
    "lsdd": "the multivariate LSDD test's drift flag",
    "online": "the online detector's alarm",
    "sequential": "the sequential per-feature test's alarm",
    "prediction": "the prediction drift flag",
    "outlier_share": "the share of outlier inputs",
}
"""Every signal the detector levels, each with an alert per severity."""


class AlertSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MITIGA_ALERT_", extra="ignore")

    drift_for: str = "5m"
    """How long a metric must stay past its level before its alert fires."""

    episode_for: str = "10m"
    """How long a confirmed drift episode must persist before ``MitigaDriftPersists`` fires."""

    lag_records: int = Field(default=10_000, ge=1)
    """Detector consumer lag (records) that, while still growing, raises ``MitigaConsumerLagGrowing``."""

    lag_for: str = "5m"
    error_ratio: float = Field(default=0.01, gt=0, lt=1)
    """Share of inference requests answered with a 5xx that raises ``MitigaInferenceErrors``."""

    latency_p99_s: float = Field(default=0.5, gt=0)
    """p99 inference latency (seconds) that raises ``MitigaInferenceSlow``."""

    service_for: str = "5m"

    feedback_unmatched_ratio: float = Field(default=0.1, gt=0, lt=1)
    """Share of ground-truth items in the last 30 minutes that found no prediction and raises
    ``MitigaFeedbackUnmatched`` (the performance metrics then rest on less data than was sent)."""

    state_memory_ratio: float = Field(default=0.8, gt=0, lt=1)
    """Share of Redis' maxmemory in use past which ``MitigaStateStoreFilling`` fires."""
    feedback_for: str = "15m"


def _alert(name: str, expr: str, severity: str, summary: str, description: str, for_: str | None = None,
           model: str | None = None, drift_type: str | None = None) -> dict[str, Any]:
    """One rule. ``model`` / ``drift_type`` are static labels for alerts whose series do not carry them."""
    labels = {"severity": severity}
    if model is not None:
        labels["model"] = model
    if drift_type is not None:
        labels["drift_type"] = drift_type
    rule: dict[str, Any] = {"alert": name, "expr": expr}
    if for_:
        rule["for"] = for_
    rule["labels"] = labels
    rule["annotations"] = {"summary": summary, "description": description}
    return rule


def _metric_rules(s: AlertSettings) -> list[dict[str, Any]]:
    rules = []
    for metric, what in SIGNALS.items():
        camel = "".join(part.capitalize() for part in metric.split("_"))
        for severity in ("warning", "critical"):
            above = ">=" if severity == "critical" else ">"
            value = f'mitiga_drift_metric{{metric="{metric}"}}'
            level = f'mitiga_drift_threshold{{metric="{metric}",severity="{severity}"'
            expr = (f'({value} {above} on(model, metric) group_left(drift_type) {level},direction="above"}})\n'
                    f'or\n({value} < on(model, metric) group_left(drift_type) {level},direction="below"}})')
            rules.append(_alert(
                f"Mitiga{camel}{severity.capitalize()}", expr, severity,
                f"{{{{ $labels.model }}}}: {metric} past its {severity} level",
                f"For model {{{{ $labels.model }}}} version {{{{ $labels.version }}}}, {what} is "
                f"{{{{ $value | printf \"%.4g\" }}}}, past the {severity} level set in the detector "
                f"(mitiga_drift_threshold). Drift type: {{{{ $labels.drift_type }}}}.", s.drift_for))
    return rules


def build_rules(s: AlertSettings | None = None) -> dict[str, Any]:
    s = s or AlertSettings()
    drift = [
        *_metric_rules(s),
        _alert("MitigaDriftPersists", "mitiga_drift_level == 2", "critical",
               "{{ $labels.model }}: critical {{ $labels.drift_type }} drift persists",
               "The detector has confirmed critical {{ $labels.drift_type }} drift for model {{ $labels.model }} "
               f"for {s.episode_for}; a retrain is requested unless the trigger is off.", s.episode_for),
        _alert("MitigaDriftWarningPersists", "mitiga_drift_level == 1", "warning",
               "{{ $labels.model }}: {{ $labels.drift_type }} drift warning persists",
               f"The detector has held a warning level for model {{{{ $labels.model }}}} for {s.episode_for}.",
               s.episode_for),
    ]
    retrain = [
        _alert("MitigaRetrainFailed",
               'sum by (model) (increase(mitiga_retrain_outcomes_total{outcome=~"failed|rollout_failed"}[30m])) > 0',
               "critical", "{{ $labels.model }}: a retrain failed",
               "A retraining run (or its Helm rollout) for model {{ $labels.model }} failed in the last 30 minutes. "
               "The champion keeps serving; see `mitiga status` and the retrainer Job's logs.",
               drift_type="none"),
        _alert("MitigaRetrainLaunchFailed",
               'sum by (model) (increase(mitiga_retrain_triggers_total{outcome=~"(manual_)?launch_failed"}[30m])) > 0',
               "critical", "{{ $labels.model }}: a retraining Job could not be started",
               "The detector could not create the retraining Job for model {{ $labels.model }} (API error or an "
               "invalid object). The lock was released and the launch is retried with backoff; see the detector's "
               "log (\"retrain launch failed\").", drift_type="none"),
        _alert("MitigaRetrainRefused",
               'sum by (model) (increase(mitiga_retrain_outcomes_total{outcome="refused"}[1h])) > 0',
               "warning", "{{ $labels.model }}: the gate refused a challenger",
               "A challenger for model {{ $labels.model }} did not beat the champion on recent labelled data in the "
               "last hour. Drift may need a different strategy or more labelled data.", drift_type="none"),
    ]
    pipeline = [
        _alert("MitigaConsumerLagGrowing",
               f"sum by (topic) (mitiga_consumer_lag) > {s.lag_records}\n"
               "and\nsum by (topic) (deriv(mitiga_consumer_lag[5m])) > 0", "warning",
               "The detector falls behind on {{ $labels.topic }}",
               f"More than {s.lag_records} records wait on {{{{ $labels.topic }}}} and the backlog grows: drift is "
               "seen late. Scale the detector (partitions allow it) or look for slow windows.",
               s.lag_for, model="all", drift_type="none"),
        _alert("MitigaEventsDropped",
               "sum by (job, topic) (increase(mitiga_events_dropped_total[10m])) > 0\nor\n"
               "sum by (job, topic) (increase(mitiga_bus_delivery_failed_total[10m])) > 0", "warning",
               "{{ $labels.job }} dropped events for {{ $labels.topic }}",
               "Events were dropped before reaching Kafka (buffer full or delivery failed); the detector sees a "
               "gap. They are counted in mitiga_events_dropped_total / mitiga_bus_delivery_failed_total.",
               model="all", drift_type="none"),
        _alert("MitigaFeedbackUnmatched",
               "sum by (model) (increase(mitiga_feedback_unmatched_total[30m]))\n/ on(model) "
               "((sum by (model) (increase(mitiga_feedback_joined_total[30m]))\n"
               "  or sum by (model) (increase(mitiga_feedback_unmatched_total[30m])) * 0)\n"
               "+ sum by (model) (increase(mitiga_feedback_unmatched_total[30m])))\n"
               f"> {s.feedback_unmatched_ratio}", "warning",
               "{{ $labels.model }}: ground truth finds no prediction",
               f"More than {s.feedback_unmatched_ratio:.0%} of the ground truth sent for {{{{ $labels.model }}}} in "
               "the last 30 minutes matched no prediction (unknown request ids, feedback later than "
               "MITIGA_FEEDBACK_TTL_S, or inference events that never reached the detector; see "
               "mitiga_feedback_unmatched_total by reason). MAE, RMSE and R² rest on less data than was sent.",
               s.feedback_for, drift_type="none"),
        _alert("MitigaStateStoreFilling",
               "max(mitiga_state_memory_used_bytes) / max(mitiga_state_memory_max_bytes > 0) > "
               f"{s.state_memory_ratio}", "warning", "The state store (Redis) is filling up",
               f"Redis uses more than {s.state_memory_ratio:.0%} of its maxmemory. With the noeviction policy it "
               "refuses writes once full (the detector then stops committing and retries): raise maxmemory, or "
               "lower MITIGA_FEEDBACK_TTL_S / MITIGA_LABELLED_MAX_BYTES.", "5m", model="all", drift_type="none"),
        _alert("MitigaDeadLetters", "sum by (reason) (increase(mitiga_detector_events_rejected_total[10m])) > 0",
               "warning", "Events went to the dead-letter topic ({{ $labels.reason }})",
               "The detector could not use some events and sent them to mitiga.dlq with the reason in the "
               "mitiga_dlq_reason header.", model="all", drift_type="none"),
    ]
    service = [
        _alert("MitigaInferenceErrors",
               'sum by (model) (rate(mitiga_inference_errors_total{code=~"5.."}[5m]))\n/ on(model) '
               "(sum by (model) (rate(mitiga_inference_requests_total[5m]))\n"
               '+ sum by (model) (rate(mitiga_inference_errors_total{code=~"5.."}[5m])))\n'
               f"> {s.error_ratio}", "critical", "{{ $labels.model }}: inference errors",
               f"More than {s.error_ratio:.0%} of inference requests for {{{{ $labels.model }}}} fail with a 5xx.",
               s.service_for, drift_type="none"),
        _alert("MitigaInferenceSlow",
               "histogram_quantile(0.99, sum by (model, le) "
               f"(rate(mitiga_inference_request_duration_seconds_bucket[5m]))) > {s.latency_p99_s}", "warning",
               "{{ $labels.model }}: slow inference",
               f"The p99 latency of {{{{ $labels.model }}}} is over {s.latency_p99_s} s.", s.service_for,
               drift_type="none"),
        _alert("MitigaServiceDown", 'up{job=~"mitiga-.*"} == 0', "critical", "{{ $labels.job }} is down",
               "Prometheus cannot scrape {{ $labels.instance }}.", "1m", model="all", drift_type="none"),
    ]
    return {"groups": [{"name": "mitiga-drift", "rules": drift}, {"name": "mitiga-retrain", "rules": retrain},
                       {"name": "mitiga-pipeline", "rules": pipeline}, {"name": "mitiga-service", "rules": service}]}


class _Dumper(yaml.SafeDumper):  # type: ignore[misc]
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_Dumper.add_representer(str, _str)


def render(s: AlertSettings | None = None) -> str:
    header = "# Generated by `python -m mitiga_devstack.alerts` (see its docstring); do not edit by hand.\n"
    return header + yaml.dump(build_rules(s), Dumper=_Dumper, sort_keys=False, width=120, allow_unicode=True)


if __name__ == "__main__":
    sys.stdout.write(render())
