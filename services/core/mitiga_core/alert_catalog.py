"""The names and words of mitiga's model alerts, shared by the rules Prometheus evaluates (``mitiga_devstack.alerts``)
and the alerts the detector reports itself when no Alertmanager is there (``GET /v1/alerts``), so both say the same.

One page per degraded model: ``MitigaModelCritical`` fires while the model's verdict is critical under the active
trigger policy. Each signal that counts under that policy has a warning of its own (``Mitiga<Signal>Warning``),
which the page silences in Alertmanager. Every alert links to its section of the runbook (docs/alerts.md).
"""

from __future__ import annotations

PAGE = "MitigaModelCritical"
"""The one critical alert per degraded model and episode."""

RETRAIN_RUNNING = "MitigaRetrainRunning"
"""Informational: a retraining run for the model is under way (it silences a repeat page in Alertmanager)."""

AWAITING_APPROVAL = "MitigaAwaitingApproval"
"""A challenger that won waits for a person to approve or reject it (``promotion_approval``)."""

RETRAIN_PAUSED = "MitigaRetrainPaused"
"""Critical: the model's automatic retraining is paused (circuit breaker or an admin) until an admin resumes it."""

RUNBOOK_BASE = "https://github.com/mitiga/mitiga/blob/main/docs/alerts.md"
"""Where the runbook lives; ``MITIGA_ALERT_RUNBOOK_BASE`` (rules) or ``MITIGA_RUNBOOK_BASE`` (detector) moves it."""

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
"""Every signal the detector levels, each with a warning alert of its own."""


def signal_alert(signal: str) -> str:
    """The warning alert of ``signal``: ``mae_ratio`` -> ``MitigaMaeRatioWarning``."""
    return "Mitiga" + "".join(part.capitalize() for part in signal.split("_")) + "Warning"


def runbook_url(alert: str, base: str = RUNBOOK_BASE) -> str:
    """The alert's section of the runbook (a Markdown heading's anchor: the name in lower case)."""
    return f"{base}#{alert.lower()}"


def page_summary(model: str, signals: str) -> str:
    return f"{model} is critical: {signals}"


def signal_summary(model: str, signal: str) -> str:
    return f"{model}: {signal} past its warning level"
