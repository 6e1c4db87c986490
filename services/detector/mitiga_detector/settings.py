"""Settings of the drift-detector service (``MITIGA_*`` environment variables)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, SecretStr

from mitiga_core.settings import CoreSettings


class Level(BaseModel):
    """One metric's warning and critical levels. ``direction`` says which side is bad.

    ``above``: warning when the value is above ``warning``, critical when it reaches ``critical``.
    ``below``: warning when the value is below ``warning``, critical when it is below ``critical``.
    """

    warning: float
    critical: float
    direction: Literal["above", "below"] = "above"


def research_thresholds() -> dict[str, Level]:
    """The research app's alert levels (warning / critical).

    - ``drift_flag``: the dataset drift flag of the univariate test, after correction (0 or 1): above 0 is a
      warning and 1 is critical, so a flagged window is critical.
    - ``share_drifted``: share of features whose test drifted (0..1): warning at 30%, critical at 60%.
    - ``mae``, ``rmse``: error on the recent feedback window, in ``metric_units``: 0.2 / 0.5 and 0.7 / 1.
    - ``r2``: below 1 is a warning, below 0.8 critical.
    - ``ks_p_value``: the smallest per-feature p-value: below 0.8 a warning, below 0.5 critical.
    """
    return {
        "drift_flag": Level(warning=0.0, critical=1.0),
        "share_drifted": Level(warning=0.3, critical=0.6),
        "mae": Level(warning=0.2, critical=0.5),
        "rmse": Level(warning=0.7, critical=1.0),
        "r2": Level(warning=1.0, critical=0.8, direction="below"),
        "ks_p_value": Level(warning=0.8, critical=0.5, direction="below"),
    }


class DetectorSettings(CoreSettings):
    service_name: str = "mitiga-detector"

    # --- server ---
    host: str = "0.0.0.0"  # noqa: S104 - a container listens on all interfaces
    """Address of the health, metrics and report endpoints."""

    port: int = Field(default=8081, ge=1, le=65535)
    """HTTP port."""

    admin_token: SecretStr | None = None
    """Bearer token for the manual retrain endpoint. Unset: it answers 403."""

    consumer_group: str = "mitiga-detector"
    """Consumer group on the inference and feedback topics."""

    # --- windows ---
    window_size: int = Field(default=100, ge=5)
    """A window closes after this many input rows ..."""

    window_seconds: float = Field(default=0.0, ge=0)
    """... or after this many seconds of event time (0: count only), if it holds at least ``min_window_rows``."""

    min_window_rows: int = Field(default=20, ge=2)
    """Fewest rows a time-closed window must hold to be tested."""

    # --- tests ---
    engine: Literal["alibi", "scipy"] = "alibi"
    """Univariate test engine: Alibi Detect (BSL 1.1) or scipy.stats (BSD-3)."""

    test: Literal["ks", "cvm", "chi2"] = "ks"
    """Univariate test: Kolmogorov-Smirnov, Cramér-von Mises, or chi-squared for categorical features."""

    correction: Literal["bonferroni", "fdr"] = "bonferroni"
    """Multiple-test correction across features."""

    p_val: float = Field(default=0.05, gt=0, lt=1)
    """Significance of the univariate tests (before correction)."""

    mmd_every: int = Field(default=0, ge=0)
    """Run Alibi's multivariate MMD test every N windows (0: never). It costs about 0.7 s a window."""

    online: Literal["none", "cvm", "mmd"] = "none"
    """Optional Alibi online detector fed row by row."""

    online_ert: float = Field(default=500.0, gt=0)
    """Expected run time (rows between false alarms) the online detector is calibrated for."""

    online_window: int = Field(default=50, ge=5)
    """Window size of the online detector."""

    online_bootstraps: int = Field(default=2000, ge=100)
    """Simulations that calibrate the online detector to ``online_ert``; it must be well above the ERT. Calibration
    runs once per model version and takes tens of seconds at the default."""

    concept_detector: Literal["adwin", "page_hinkley", "none"] = "adwin"
    """river change detector on the absolute-error stream."""

    # --- decisions ---
    thresholds: dict[str, Level] = Field(default_factory=research_thresholds)
    """Warning and critical levels per metric (JSON). A model's manifest may override them."""

    model_thresholds: dict[str, dict[str, float]] = Field(default_factory=dict)
    """Per-model overrides, e.g. ``{"air": {"r2.critical": 0.68}}``. They win over the manifest's ``thresholds``."""

    level_metrics: list[str] = Field(default_factory=lambda: ["drift_flag", "share_drifted", "mae", "rmse"])
    """Metrics whose levels decide a window's level (and so episodes and retraining). ``r2`` and ``ks_p_value`` are
    exported with their levels but left out by default: with the research levels, R² below 1 holds for any
    imperfect model, and with no drift at all the smallest raw p-value is below 0.5 in most windows. Add ``r2``
    (and set ``r2.critical``, e.g. 0.68) for an R²-based retraining rule."""

    metric_units: Literal["scaled", "original"] = "scaled"
    """Units of the MAE/RMSE compared with the thresholds: the model's scaled space (as in the research) or
    original units. Both are exported."""

    persistence: int = Field(default=2, ge=1)
    """Consecutive windows a level must hold before it counts."""

    clear_after: int = Field(default=3, ge=1)
    """Consecutive windows below warning that close an episode (hysteresis)."""

    performance_window: int = Field(default=200, ge=5)
    """Labelled rows in the rolling performance window."""

    min_performance_rows: int = Field(default=20, ge=2)
    """Fewest labelled rows before MAE/RMSE/R² take part in decisions."""

    feedback_ttl_s: float = Field(default=7 * 24 * 3600, gt=0)
    """How long a prediction waits for its ground truth."""

    feedback_wait_s: float = Field(default=300.0, ge=0)
    """How long ground truth read before its prediction's event waits for it (they travel on different topics);
    after that it counts as unmatched. 0: it does not wait."""

    feedback_parked_max: int = Field(default=10_000, ge=0)
    """Most feedback items waiting for their prediction at once; the oldest is given up (and counted) past it."""

    labelled_max_requests: int = Field(default=2000, ge=1)
    """Joined requests (inputs with their ground truth) kept per model in the state store for the retrainer."""

    # --- retraining trigger ---
    trigger: Literal["auto", "alert_only", "off"] = "auto"
    """On a critical episode: launch a retrain job (auto), only publish events (alert_only), or nothing."""

    cooldown_s: float = Field(default=3600.0, ge=0)
    """After a retrain request, no other for the same model for this long."""

    max_attempts: int = Field(default=3, ge=1)
    """Retrain requests one episode may make (a refused or unhelpful retrain is retried after the cooldown)."""

    lock_ttl_s: float = Field(default=6 * 3600, gt=0)
    """How long a retrain lock is held if the job never reports back."""

    blind_every: Literal["none", "month", "quarter", "year"] = "none"
    """Blind retraining on a schedule in data time (the windows' event or ``data_time``), whatever the drift; it
    stands in for a CronJob. Independent of ``trigger``, which governs informed retraining."""

    retrain_strategy: str = "sliding_window"
    """Strategy passed to the retrainer."""

    retrain_mode: str = "warm_start"
    """Mode passed to the retrainer."""

    launcher: Literal["local", "kubernetes", "none"] = "local"
    """How retrainer jobs run: local subprocesses, Kubernetes Jobs (from ``job_template``), or not at all."""

    job_template: str = "/etc/mitiga/job/job.yaml"
    """The Kubernetes Job template (the chart mounts its ConfigMap here)."""

    job_namespace: str = "default"
    """Namespace of the retraining Jobs (the chart sets the release's)."""

    retrain_module: str = "mitiga_retrainer"
    """The Python module the job runs (its image's entrypoint in Kubernetes)."""

    history: int = Field(default=500, ge=10)
    """Windows of history kept per model for the report."""
