"""The Prometheus alert rules of mitiga, generated from one place.

Model alerts follow the detector's verdict, not raw values: one page (``MitigaModelCritical``, critical) while a
model's verdict under the active trigger policy is critical (``mitiga_model_level``), naming the signals that decided
it (``mitiga_model_deciding_signal``: value, level, threshold); a warning per signal that counts under the policy
and holds its confirmed warning level (``mitiga_drift_signal``, set only for ``level_metrics``). So a raw minimum
p-value never pages, input drift under the ``performance`` policy only warns, and error levels are the model's own
validation error times a factor. Thresholds are not written here: the detector applies them. What is set here is how
long a condition must hold (``for``), where the runbook and the console are, and the service-level limits, from
``MITIGA_ALERT_*`` variables.

``python -m mitiga_devstack.alerts > rules.yaml`` prints the rules; the chart ships the defaults in
``charts/mitiga/files/prometheus-rules.yaml`` (a test keeps that file equal to this output).
"""

from __future__ import annotations

import sys
from typing import Any

import yaml
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from mitiga_core.alert_catalog import (
    AWAITING_APPROVAL,
    PAGE,
    RETRAIN_PAUSED,
    RETRAIN_RUNNING,
    RUNBOOK_BASE,
    SIGNALS,
    runbook_url,
    signal_alert,
)
from mitiga_detector.levels import METRIC_DRIFT_TYPE


class AlertSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MITIGA_ALERT_", extra="ignore")

    page_for: str = "1m"
    """How long a model's verdict must stay critical before it pages (the detector has already confirmed it)."""

    drift_for: str = "5m"
    """How long a signal must hold its confirmed warning level before its warning fires."""

    retrain_running_for: str = "2m"
    """How long a retrain must run before it silences the model's page (the page of a new episode goes out first)."""

    runbook_base: str = RUNBOOK_BASE
    """The runbook page; each alert's ``runbook_url`` is its section."""

    console_url: str = "http://mitiga-console:8090"
    """The console, for the page's link to the model."""

    lag_records: int = Field(default=10_000, ge=1)
    """Detector consumer lag (records) that, while still growing, raises ``MitigaConsumerLagGrowing``."""

    lag_for: str = "5m"
    error_ratio: float = Field(default=0.01, gt=0, lt=1)
    """Share of inference requests answered with a 5xx that raises ``MitigaInferenceErrors``."""

    latency_p99_s: float = Field(default=0.5, gt=0)
    """p99 inference latency (seconds) that raises ``MitigaInferenceSlow``."""

    service_for: str = "5m"

    down_for: str = "1m"
    """How long Prometheus must fail to scrape a service before ``MitigaServiceDown`` fires."""

    feedback_unmatched_ratio: float = Field(default=0.1, gt=0, lt=1)
    """Share of ground-truth items in the last 30 minutes that found no prediction and raises
    ``MitigaFeedbackUnmatched`` (the performance metrics then rest on less data than was sent)."""

    state_memory_ratio: float = Field(default=0.8, gt=0, lt=1)
    """Share of Redis' maxmemory in use past which ``MitigaStateStoreFilling`` fires."""
    feedback_for: str = "15m"


_RUNBOOK: dict[str, str] = {}
"""Set by :func:`build_rules`: the runbook page the annotations link to."""


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
    rule["annotations"] = {"summary": summary, "description": description,
                           "runbook_url": runbook_url(name, _RUNBOOK.get("base", RUNBOOK_BASE))}
    return rule


_DECIDING = ('{{ range $i, $s := query (printf "mitiga_model_deciding_signal{model=\'%s\'}" $labels.model)'
             ' | sortByLabel "signal" }}'
             '{{ if $i }}, {{ end }}{{ $s.Labels.signal }} = {{ $s.Value | printf "%.4g" }} '
             '({{ if eq $s.Labels.direction "above" }}>={{ else }}<{{ end }} {{ $s.Labels.threshold }}){{ end }}')
"""The deciding signals of the page's model, each with its value and the threshold it passed."""


def _model_rules(s: AlertSettings) -> list[dict[str, Any]]:
    page = _alert(
        PAGE, "max by (model, version) (mitiga_model_level) >= 2", "critical",
        "{{ $labels.model }} is critical: " + _DECIDING,
        "Model {{ $labels.model }} version {{ $labels.version }} is critical under the detector's trigger policy. "
        "Deciding signals: " + _DECIDING + ". A retrain is requested unless the trigger is off or the model's "
        f"retraining is paused. Console: {s.console_url}/models/{{{{ $labels.model }}}}", s.page_for,
        drift_type="model")
    rules = [page]
    for signal, what in SIGNALS.items():
        value = f'mitiga_drift_metric{{metric="{signal}"}}'
        rules.append(_alert(
            signal_alert(signal), f'{value}\nand on(model) (mitiga_drift_signal{{signal="{signal}"}} >= 1)',
            "warning", f"{{{{ $labels.model }}}}: {signal} past its warning level",
            f"For model {{{{ $labels.model }}}} version {{{{ $labels.version }}}}, {what} is "
            f"{{{{ $value | printf \"%.4g\" }}}}, past its warning level (mitiga_drift_threshold) for as many "
            "windows as its persistence asks. It counts under the trigger policy; the model's page silences it.",
            s.drift_for, drift_type=METRIC_DRIFT_TYPE.get(signal, "data")))
    rules.append(_alert(
        RETRAIN_PAUSED, "max by (model) (mitiga_retrain_paused) == 1", "critical",
        "{{ $labels.model }}: automatic retraining paused",
        "Automatic retraining of {{ $labels.model }} is paused: its retrains kept failing or being refused, it "
        "retrained too often, or an admin paused it (`mitiga retraining status {{ $labels.model }}` says why). "
        "Manual retraining stays possible; an admin resumes it.", drift_type="none"))
    rules.append(_alert(
        AWAITING_APPROVAL, "max by (model, version) (mitiga_promotion_awaiting_approval) == 1", "warning",
        "{{ $labels.model }}: version {{ $labels.version }} awaits approval",
        "A challenger of {{ $labels.model }}, version {{ $labels.version }}, won its gate (and its live trial, when "
        "one ran) and waits for an admin: `mitiga approvals show {{ $labels.model }}` gives the evidence, "
        f"`mitiga approvals approve|reject`, or the console: {s.console_url}/models/{{{{ $labels.model }}}}. "
        "Unanswered, it expires and the champion stays.", drift_type="none"))
    rules.append(_alert(
        RETRAIN_RUNNING, "max by (model) (mitiga_retrain_running) == 1", "info",
        "{{ $labels.model }}: a retrain is running",
        "A retraining run holds the model's lock. While it runs, the model's page does not repeat.",
        s.retrain_running_for, drift_type="none"))
    return rules


def build_rules(s: AlertSettings | None = None) -> dict[str, Any]:
    s = s or AlertSettings()
    _RUNBOOK["base"] = s.runbook_base
    drift = _model_rules(s)
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
               "Prometheus cannot scrape {{ $labels.instance }}.", s.down_for, model="all", drift_type="none"),
    ]
    return {"groups": [{"name": "mitiga-drift", "rules": drift}, {"name": "mitiga-retrain", "rules": retrain},
                       {"name": "mitiga-pipeline", "rules": pipeline}, {"name": "mitiga-service", "rules": service}]}


RUNBOOK: dict[str, str] = {
    PAGE: "The model answers worse than it did when it was validated, by the signals that decided (in the page: "
          "each with its value and the threshold it passed). 1. Open the console's model page (the link in the "
          "page): the health over time says since when and which signals. 2. A retrain is requested on its own "
          "unless `MITIGA_TRIGGER` is `alert_only`/`off`; `mitiga status` and the Retraining page follow it; the "
          "page does not repeat while it runs. 3. If the gate refuses the challengers (`MitigaRetrainRefused`), "
          "look at the labelled data: the ground truth may be late or wrong (`MitigaFeedbackUnmatched`), or the "
          "world changed more than the recent rows can teach: retrain by hand with another strategy "
          "(`mitiga retrain MODEL --strategy sliding_window`) or roll back (`mitiga models rollback`). 4. A level "
          "that does not fit this model is set per model (`MITIGA_MODEL_THRESHOLDS`, e.g. "
          '`{"air": {"mae_ratio.critical": 2.0}}`).',
    RETRAIN_PAUSED: "The circuit breaker stopped retraining this model on its own: its last retrains were refused "
                    "or failed in a row (`MITIGA_BREAKER_FAILURES`), or it asked for more retrains than "
                    "`MITIGA_BREAKER_MAX_RETRAINS` in `MITIGA_BREAKER_PERIOD_S`; or an admin paused it. Pages go on; "
                    "nothing retrains until a person decides. 1. `mitiga retraining status MODEL` says why and since "
                    "when. 2. Look at the refusals (`mitiga models show MODEL`: the decision log) and the data. "
                    "3. Fix, retrain by hand if needed (`mitiga retrain MODEL`), then `mitiga retraining resume "
                    "MODEL` (or the console's Resume button).",
    AWAITING_APPROVAL: "Promotion needs a person here (`MITIGA_PROMOTION_APPROVAL`). `mitiga approvals show MODEL` "
                       "(or the console's model page) gives the gate's numbers on held-out recent rows, the live "
                       "trial's when one ran, and the episode that asked for the retrain. Approve (a promotion Job "
                       "rolls it out) or reject with a reason; unanswered, it expires after "
                       "`MITIGA_APPROVAL_TTL_S` and the champion stays.",
    RETRAIN_RUNNING: "Informational, routed to no one: it silences the model's page while the retrain runs. If it "
                     "lasts longer than a training usually takes, see the retrainer Job's logs "
                     "(`kubectl logs job/retrain-...`).",
    "MitigaRetrainFailed": "A retraining run or its rollout failed; the champion keeps serving. Read the Job's logs "
                           "(`kubectl logs job/<request id>`) and `mitiga status`; fix the cause (data, resources, "
                           "Helm), then `mitiga retrain MODEL`.",
    "MitigaRetrainLaunchFailed": "The detector could not create the Job (API error, RBAC, quota). It retries with "
                                 "backoff; check the detector's log (`retrain launch failed`) and its Role.",
    "MitigaRetrainRefused": "The gate kept the champion: the challenger was not better on recent labelled data. "
                            "Nothing is broken; if the model stays critical, see MitigaModelCritical step 3.",
    "MitigaConsumerLagGrowing": "The detector falls behind the stream: scale it (`detector.replicas`, up to the "
                                "partitions) or look for slow windows (`mitiga_detector_processing_seconds`).",
    "MitigaEventsDropped": "Events were dropped before Kafka (buffer full or delivery failed): check Kafka's health "
                           "and the publisher's buffer (`MITIGA_PUBLISH_BUFFER`).",
    "MitigaFeedbackUnmatched": "Ground truth names requests the detector does not know: wrong ids, truth later than "
                               "`MITIGA_FEEDBACK_TTL_S`, or inference events lost. See "
                               "`mitiga_feedback_unmatched_total` by reason.",
    "MitigaStateStoreFilling": "Redis nears its maxmemory: raise it, or lower `MITIGA_FEEDBACK_TTL_S` / "
                               "`MITIGA_LABELLED_MAX_BYTES`.",
    "MitigaDeadLetters": "Events the detector could not use went to `mitiga.dlq` with the reason in their "
                         "`mitiga_dlq_reason` header: read them (`kafka-console-consumer`) and fix the producer.",
    "MitigaInferenceErrors": "The inference service answers 5xx: read its log; a model that fails to load or a "
                             "full disk are the usual causes; `mitiga models rollback` restores the last version.",
    "MitigaInferenceSlow": "p99 latency is high: look at CPU throttling, batch sizes and the replica count.",
    "MitigaServiceDown": "Prometheus cannot scrape the service: `kubectl get pods`, then its events and logs.",
}
"""What a person does about each alert (docs/alerts.md, the runbook each alert links to). The signal warnings share
one entry, written by :func:`runbook`."""


def runbook(alert: str) -> str:
    if alert in RUNBOOK:
        return RUNBOOK[alert]
    signal = next((s for s in SIGNALS if signal_alert(s) == alert), None)
    if signal is None:
        raise KeyError(f"{alert} has no runbook entry")
    return (f"{SIGNALS[signal][0].upper()}{SIGNALS[signal][1:]} has held its warning level. A warning is not a "
            "page: the model may still answer well (input drift under the `performance` policy only warns). Look "
            "at the model's health in the console; if its error follows, MitigaModelCritical pages. A level that "
            f"does not fit this model is set per model (`{signal}.warning` in `MITIGA_MODEL_THRESHOLDS`); a signal "
            "that does not matter for it is left out of `MITIGA_LEVEL_METRICS`.")


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
