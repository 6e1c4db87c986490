"""Settings of a retraining run (``MITIGA_*`` environment variables; the command's options override them)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mitiga_core.promotion import Approval, PromotionMode  # noqa: TC001 - pydantic reads the annotation
from mitiga_core.settings import CoreSettings


class RetrainerSettings(CoreSettings):
    service_name: str = "mitiga-retrainer"

    model: str = ""
    """The model to retrain."""

    base_version: str | None = None
    """The version to start from (default: the champion)."""

    strategy: Literal["full_history", "sliding_window", "gradual_forgetting"] = "sliding_window"
    """How the training set is built from the original and the labelled production data."""

    mode: Literal["warm_start", "reset"] = "warm_start"
    """Fine-tune the base weights, or train the same architecture from new weights."""

    epochs: int = Field(default=5, ge=1)
    """Training epochs."""

    window_rows: int | None = Field(default=500, ge=1)
    """sliding_window: keep the newest rows (unset it to use ``window_days``)."""

    window_days: int | None = Field(default=None, ge=1)
    """sliding_window: keep the newest days instead of rows."""

    half_life: float | None = Field(default=250.0, gt=0)
    """gradual_forgetting: a row's weight halves every ``half_life`` rows of age."""

    holdout_rows: int = Field(default=60, ge=1)
    """Labelled rows kept for the gate and never trained on, drawn across the recent period."""

    holdout_spread: float = Field(default=3.0, ge=1)
    """The recent period the holdout is drawn from, in multiples of ``holdout_rows`` (1: the newest rows only)."""

    holdout_blocks: int = Field(default=4, ge=1)
    """Contiguous blocks the holdout is made of, spread evenly over the recent period."""

    max_holdout_share: float = Field(default=0.5, gt=0, le=1)
    """The gate refuses a challenger when one source request, or one data time, gives more than this share of the
    holdout (so no single client call or burst chooses the promoted model). 1 turns the check off."""

    max_source_share: float = Field(default=0.5, gt=0, le=1)
    """Where ground truth comes from several label sources (the inference service's ``MITIGA_FEEDBACK_TOKENS``), a
    source that gave more than this share of the holdout's production rows must not decide alone: the challenger
    must also beat the champion without that source's rows. A source under the share moves the holdout's error by
    at most its share of the rows' largest error; a labeller whose token leaked cannot choose the promoted model
    alone. 1 turns the check off."""

    margin: float = Field(default=0.0, ge=0, lt=1)
    """Relative improvement over the champion the challenger needs to be promoted."""

    metric: Literal["mae", "rmse", "mse", "log_loss", "f1", "accuracy", "brier"] | None = None
    """The gate's metric. Unset: the model's task chooses (MAE for regressions and forecasts, log loss for
    classifiers); regressions take ``mae``, ``rmse``, ``mse``, classifiers ``log_loss``, ``f1``, ``accuracy``,
    ``brier``."""

    min_rows: int = Field(default=50, ge=2)
    """Fewest rows the strategy must leave to train on."""

    data_start: str | None = None
    """Only labelled production rows from this date (ISO)."""

    data_end: str | None = None
    """Only labelled production rows up to this date (ISO)."""

    request_id: str = ""
    """The idempotent request id (the job name when triggered by the detector)."""

    episode_id: str = ""
    """The drift episode that triggered the run, if any."""

    trigger: Literal["informed", "blind", "manual", "promotion"] = "manual"
    """What started the run (``promotion``: the detector's promotion policy chose the candidate on trial)."""

    # --- promotion ---
    promotion_mode: PromotionMode = "offline"
    """What happens to a challenger that passed the gate: ``offline`` promotes it at once; ``shadow`` serves it a
    copy of live requests off the request path, ``canary`` lets it answer ``promotion_canary_percent`` of them; in
    both the detector's promotion policy then promotes or discards it on labelled live requests."""

    promotion_canary_percent: float = Field(default=10.0, gt=0, lt=100)
    """canary: the share of live requests (sticky by request key) the candidate answers."""

    promotion_approval: Approval = "none"
    """``required``: a challenger that won the gate waits for an admin's approval (console, ``mitiga approvals``,
    the detector's API) instead of going live; it expires after the detector's ``approval_ttl_s``."""

    promotion_approval_models: list[str] = Field(default_factory=list)
    """Models whose challengers wait for approval whatever ``promotion_approval`` says."""

    promote_version: str | None = None
    """Set by a promotion request: promote this candidate (it must be the one on trial) instead of training."""

    lock_ttl_s: float = Field(default=6 * 3600, gt=0)
    """How long the model's retrain lock is held when a run that took it itself (a CronJob's or a manual one)
    never releases it. Runs the detector launched hold the lock it took for them."""

    # --- rollout ---
    rollout: Literal["none", "helm"] = "none"
    """After a promotion: only announce it (inference services following the champion hot-swap), or also
    ``helm upgrade`` the release with the new version (Kubernetes, pinned versions)."""

    helm_binary: str = "helm"
    helm_release: str = ""
    """The release to upgrade (the chart sets it)."""

    helm_chart: str = "/opt/mitiga/chart"
    """The chart, as shipped in the retrainer image."""

    helm_namespace: str = "default"
    helm_timeout: str = "10m"
    """How long ``--wait`` waits for the rolled pods before ``--atomic`` rolls back."""

    helm_deadline_s: float = Field(default=1800.0, gt=0)
    """Hard limit on the helm process."""

    helm_driver: Literal["configmap", "secret"] = "configmap"
    """Where Helm keeps the release's records (``HELM_DRIVER``): ``configmap`` as the chart is installed by default,
    so that the retrainer needs no access to Secrets."""

    helm_extra_args: list[str] = Field(default_factory=list)
    """More ``helm upgrade`` arguments (e.g. ``["--kube-context", "prod"]``)."""
