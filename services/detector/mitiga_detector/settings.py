"""Settings of the drift-detector service (``MITIGA_*`` environment variables)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, SecretStr

from mitiga_core.alert_catalog import RUNBOOK_BASE
from mitiga_core.promotion import Approval  # noqa: TC001 - pydantic reads the annotation
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
    """The alert level of every signal (warning / critical). The research app's levels first:

    - ``drift_flag``: the dataset drift flag of the univariate test, after correction (0 or 1): above 0 is a
      warning and 1 is critical, so a flagged window is critical.
    - ``share_drifted``: share of features whose test drifted (0..1): warning at 30%, critical at 60%.
    - ``mae``, ``rmse``: error on the recent feedback window, in ``metric_units``: 0.2 / 0.5 and 0.7 / 1.
    - ``r2``: below 1 is a warning, below 0.8 critical.
    - ``ks_p_value``: the smallest per-feature p-value: below 0.8 a warning, below 0.5 critical.

    Then mitiga's own signals:

    - ``mae_ratio``, ``rmse_ratio``: the realised error over the model's own validation error (recorded in its
      bundle): warning at 1.2x, critical at 1.5x. Per model: ``{"mae_ratio.critical": 2.0}``. Every ratio is the one
      the rows behind both errors support (``ratio_confidence``), so few or lucky held-out rows do not inflate it.
    - ``skill_ratio`` (forecast models): the MAE over the naive forecast's MAE ("tomorrow = today") on the labelled
      window, over the same ratio on the validation rows: the model lost skill, whatever the series' level.
    - ``mase`` (forecast models): that MAE over the naive forecast's MAE itself (the mean absolute scaled error):
      above 1 the model does worse than "tomorrow = today"; warning above 1.1, critical at 1.3.
    - ``estimated_mae_ratio``: the error estimated from the inputs alone (before labels), over the validation error.
    - Classifiers: ``log_loss_ratio`` and ``error_rate_ratio`` (one minus the accuracy), the realised values over
      the validation's, warning at 1.2x and critical at 1.5x; ``estimated_error_rate_ratio``, the error rate
      estimated before labels (CBPE) over the validation's. ``accuracy`` and ``f1`` (below 0.8 / 0.6) and
      ``log_loss`` (0.7 / 1.0) are exported with levels to add to ``level_metrics``.
    - ``concept``: 1 when the error-stream detector saw the error rise in the window.
    - ``mmd``, ``lsdd``, ``online``, ``sequential``, ``prediction``: 1 when that test flagged the window (each is
      calibrated at its own significance or expected run length), so a flag is critical.
    - ``outlier_share``: share of the window's rows beyond the reference's 99th outlier-score percentile (about 1%
      on reference-like data): warning above 5%, critical at 15%.
    """
    flag = Level(warning=0.0, critical=1.0)
    return {
        "drift_flag": Level(warning=0.0, critical=1.0),
        "share_drifted": Level(warning=0.3, critical=0.6),
        "mae": Level(warning=0.2, critical=0.5),
        "rmse": Level(warning=0.7, critical=1.0),
        "r2": Level(warning=1.0, critical=0.8, direction="below"),
        "ks_p_value": Level(warning=0.8, critical=0.5, direction="below"),
        "mae_ratio": Level(warning=1.2, critical=1.5),
        "rmse_ratio": Level(warning=1.2, critical=1.5),
        "skill_ratio": Level(warning=1.2, critical=1.5),
        "mase": Level(warning=1.1, critical=1.3),
        "estimated_mae_ratio": Level(warning=1.2, critical=1.5),
        "log_loss_ratio": Level(warning=1.2, critical=1.5),
        "error_rate_ratio": Level(warning=1.2, critical=1.5),
        "estimated_error_rate_ratio": Level(warning=1.2, critical=1.5),
        "accuracy": Level(warning=0.8, critical=0.6, direction="below"),
        "f1": Level(warning=0.8, critical=0.6, direction="below"),
        "log_loss": Level(warning=0.7, critical=1.0),
        "concept": flag, "mmd": flag, "lsdd": flag, "online": flag, "sequential": flag, "prediction": flag,
        "outlier_share": Level(warning=0.05, critical=0.15),
    }


DEFAULT_SIGNALS = ["drift_flag", "share_drifted", "sequential", "online", "mmd", "lsdd", "prediction",
                   "outlier_share", "mae_ratio", "rmse_ratio", "skill_ratio", "mase", "concept",
                   "estimated_mae_ratio", "log_loss_ratio", "error_rate_ratio", "estimated_error_rate_ratio"]


class DetectorSettings(CoreSettings):
    service_name: str = "mitiga-detector"

    # --- server ---
    host: str = "0.0.0.0"  # noqa: S104 - a container listens on all interfaces
    """Address of the health, metrics and report endpoints."""

    port: int = Field(default=8081, ge=1, le=65535)
    """HTTP port."""

    admin_token: SecretStr | None = None
    """Bearer token for the manual retrain endpoint. Unset: it answers 403."""

    max_request_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)
    """Largest request body (a manual retrain's dataset); larger is a 413, refused before it is read whole."""

    runbook_base: str = RUNBOOK_BASE
    """Where the runbook of the alerts lives (``GET /v1/alerts`` links each alert to its section)."""

    consumer_group: str = "mitiga-detector"
    """Consumer group on the inference and feedback topics."""

    # --- windows ---
    window_size: int = Field(default=100, ge=5)
    """A window closes after this many input rows ..."""

    window_seconds: float = Field(default=0.0, ge=0)
    """... or after this many seconds of event time (0: count only), if it holds at least ``min_window_rows``."""

    min_window_rows: int = Field(default=20, ge=2)
    """Fewest rows a time-closed window must hold to be tested."""

    feature_series: int = Field(default=10, ge=0)
    """Per-feature Prometheus series (p-value, statistic, Wasserstein, Jensen-Shannon, PSI) are exported for the
    ``feature_series`` most drifted features of each window (smallest p-values); the others leave their series and
    count in the aggregates (``mitiga_drift_share_features``, ``mitiga_drift_ks_p_value_min``,
    ``mitiga_drift_distance_max``). 0: every feature. The detector's API keeps every feature's values."""

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

    lsdd_every: int = Field(default=0, ge=0)
    """Run Alibi's multivariate LSDD test every N windows (0: never)."""

    sequential: bool = True
    """Run the per-feature sequential (CUSUM) test on every row; it can alarm mid-window, and the window then
    closes at once (if it holds ``min_window_rows``) so the verdict does not wait for a full window."""

    sequential_arl: float = Field(default=50_000.0, gt=100)
    """Rows expected between two false alarms of the sequential test on reference-like data."""

    estimate_performance: bool = True
    """Estimate each window's MAE from its inputs and predictions before labels arrive (direct loss estimation,
    fitted on the bundle's ``validation.npz``; versions without one are not estimated)."""

    outliers: bool = True
    """Score each window's rows with an isolation forest fitted on the reference; the outlier share is a signal."""

    outlier_quantile: float = Field(default=0.99, gt=0.5, lt=1)
    """Reference outlier-score quantile beyond which a row is an outlier."""

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

    trigger_policy: Literal["performance", "drift", "any"] = "performance"
    """Which signals may make a window critical (and so retrain); the others stop at warning (an alert, no retrain).

    - ``performance`` (default): the model got worse, realised (``mae_ratio``, ``rmse_ratio``, ``skill_ratio``,
      ``mae``, ``rmse``, ``r2``, ``concept``) or estimated before labels (``estimated_mae_ratio``). Input drift alone
      only warns.
      Choose it when retraining costs something and inputs move for ever (trending series).
    - ``drift``: the inputs moved (``drift_flag``, ``share_drifted``, ``ks_p_value``, ``sequential``, ``online``,
      ``mmd``, ``lsdd``, ``prediction``, ``outlier_share``). Choose it when labels never come and no performance
      estimate is trusted.
    - ``any``: every signal. The most retraining, the earliest."""

    forecast_scale_free: bool = True
    """For forecast models, the error ratios in the series' own units (``mae_ratio``, ``rmse_ratio``,
    ``estimated_mae_ratio``) stop at warning; the scale-free ones (``mase``, ``skill_ratio``) decide. A series whose
    level or volatility grows (a share price over years) raises every forecaster's absolute error, the naive
    "tomorrow = today" one's too, without the model getting worse at what can be done. Set it false to let them
    retrain too (the research's absolute view)."""

    level_metrics: list[str] = Field(default_factory=lambda: list(DEFAULT_SIGNALS))
    """Signals whose levels take part in the verdict. The thesis's absolute error levels are available: add
    ``mae``, ``rmse`` (in ``metric_units``) or ``r2`` (set ``r2.critical``, e.g. 0.68, the air-quality model's
    test R²). ``ks_p_value`` is exported with its levels but left out: with no drift at all the smallest raw
    p-value is below 0.5 in most windows."""

    signal_persistence: dict[str, int] = Field(default_factory=lambda: {
        "sequential": 1, "online": 1, "concept": 1, "mae_ratio": 1, "rmse_ratio": 1, "skill_ratio": 1, "mase": 1,
        "mae": 1, "rmse": 1, "r2": 1, "log_loss_ratio": 1, "error_rate_ratio": 1, "accuracy": 1, "f1": 1,
        "log_loss": 1})
    """Consecutive windows each signal's level must hold before it counts; signals not named use ``persistence``.
    The sequential and online tests and the error-stream detector are already sequential, so one alarm counts; the
    realised error is already an average over the labelled window (``performance_window`` rows, at least
    ``min_performance_rows``), so one window counts too. Per-window tests and estimates wait for ``persistence``."""

    metric_units: Literal["scaled", "original"] = "scaled"
    """Units of the MAE/RMSE compared with the thresholds: the model's scaled space (as in the research) or
    original units. Both are exported."""

    persistence: int = Field(default=2, ge=1)
    """Consecutive windows a signal's level must hold before it counts (see ``signal_persistence``)."""

    clear_after: int = Field(default=3, ge=1)
    """Consecutive windows below warning that close an episode (hysteresis)."""

    performance_window: int = Field(default=200, ge=5)
    """Labelled rows in the rolling performance window."""

    min_performance_rows: int = Field(default=20, ge=2)
    """Fewest labelled rows before MAE/RMSE/R² take part in decisions."""

    ratio_confidence: float = Field(default=0.9, ge=0.5, lt=1)
    """How sure a ratio signal (``mae_ratio``, ``error_rate_ratio``, ``estimated_error_rate_ratio``...) must be: it
    reports the ratio the rows behind it support at this one-sided confidence, the recent error's lower bound over
    the model's held-out error's upper bound (normal approximation of each mean). A champion whose held-out rows
    happened to be easy then does not make every ordinary window look worse. 0.5: the plain ratio of the two means."""

    feedback_ttl_s: float = Field(default=7 * 24 * 3600, gt=0)
    """How long a prediction waits for its ground truth."""

    dedupe_max: int = Field(default=200_000, ge=1)
    """Marks of handled bus messages kept (per consumer group) so that a redelivered one is not applied twice; the
    oldest go first beyond this many (a redelivery comes within minutes of the original, far inside it)."""

    predictions_max: int = Field(default=100_000, ge=1)
    """Predictions kept per model for their ground truth (with ``predictions_max_bytes``): beyond, the oldest are
    evicted and counted (``mitiga_detector_predictions_evicted_total``), so the state store stays bounded whatever
    the traffic (a TTL alone bounds it only by requests/s x ``feedback_ttl_s``)."""

    predictions_max_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)
    """Bytes of predictions kept per model (keys and float32 records, about 300 bytes for a row of 50 inputs)."""

    feedback_wait_s: float = Field(default=300.0, ge=0)
    """How long ground truth read before its prediction's event waits for it (they travel on different topics);
    after that it counts as unmatched. 0: it does not wait."""

    feedback_parked_max: int = Field(default=10_000, ge=0)
    """Most feedback items waiting for their prediction at once; the oldest is given up (and counted) past it."""

    feedback_parked_max_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    """Memory the parked feedback may take; the oldest is given up (and counted) past it."""

    labelled_max_requests: int = Field(default=2000, ge=1)
    """Joined requests (inputs with their ground truth) kept per model in the state store for the retrainer."""

    labelled_max_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    """Bytes of joined requests kept per model (float32 records, about 200 bytes a row of 50 inputs): the oldest
    requests go first once the next record would not fit."""

    # --- retraining trigger ---
    trigger: Literal["auto", "alert_only", "off"] = "auto"
    """On a critical episode: launch a retrain job (auto), only publish events (alert_only), or nothing."""

    cooldown_s: float = Field(default=3600.0, ge=0)
    """After a retrain request, no other for the same model for this long."""

    max_attempts: int = Field(default=3, ge=1)
    """Retrain requests one episode may make (a refused or unhelpful retrain is retried after the cooldown)."""

    retry_after_rows: int = Field(default=60, ge=0)
    """A retry within an episode waits for this many new labelled rows: a challenger trained on the data the gate
    has just judged would be judged the same."""

    rearm_rows: int = Field(default=500, ge=1)
    """An episode that has used its ``max_attempts`` makes another after this many new labelled rows (or sooner,
    by ``rearm_factor``)."""

    rearm_factor: float = Field(default=1.5, gt=1)
    """An episode that has used its ``max_attempts`` makes another once its deciding signal is this many times
    further past its critical level than at the last attempt (the model kept getting worse)."""

    promotion_approval: Approval = "none"
    """``required``: a challenger that won its gate (and its live trial, when one runs) waits for an admin's
    approval instead of going live (``promotion_approval_models``: only for these models). Set the retrainer's
    ``MITIGA_PROMOTION_APPROVAL`` alike (the chart does)."""

    promotion_approval_models: list[str] = Field(default_factory=list)

    approval_ttl_s: float = Field(default=3 * 86400, gt=0)
    """How long a challenger waits for approval before it expires (the champion stays)."""

    breaker_failures: int = Field(default=3, ge=1)
    """Circuit breaker: after this many refused or failed retrains of a model in a row, its automatic retraining
    pauses (a critical alert, ``MitigaRetrainPaused``) until an admin resumes it; manual retraining stays possible."""

    breaker_max_retrains: int = Field(default=12, ge=1)
    """Circuit breaker: more automatic retrain requests than this for one model within ``breaker_period_s`` pause
    its automatic retraining too (a model that keeps retraining needs a person)."""

    breaker_period_s: float = Field(default=7 * 86400, gt=0)

    lock_ttl_s: float = Field(default=6 * 3600, gt=0)
    """How long a retrain lock is held if the job never reports back."""

    launch_backoff_s: float = Field(default=30.0, ge=0)
    """After a failed Job launch, how long launches wait before the next critical window retries; it doubles per
    consecutive failure."""

    launch_backoff_max_s: float = Field(default=1800.0, ge=0)
    """The longest wait between failed launches."""

    blind_every: Literal["none", "month", "quarter", "year"] = "none"
    """Blind retraining on a schedule in data time (the windows' event or ``data_time``), whatever the drift; it
    stands in for a CronJob. Independent of ``trigger``, which governs informed retraining."""

    retrain_strategy: str = "sliding_window"
    """Strategy passed to the retrainer."""

    retrain_mode: str = "warm_start"
    """Mode passed to the retrainer."""

    # --- promotion after a live trial (shadow or canary; the retrainer's ``promotion_mode``) ---
    promotion_min_labelled: int = Field(default=200, ge=10)
    """Labelled requests both versions answered before the trial is decided: the candidate is promoted when its
    error on them is lower with ``promotion_confidence`` (a one-sided Wilcoxon signed-rank test on the paired
    per-request errors), otherwise discarded. Decided once, at this count (no peeking)."""

    promotion_confidence: float = Field(default=0.95, gt=0.5, lt=1)
    """The confidence the candidate's lower error needs (0.95: p < 0.05)."""

    promotion_metric: Literal["mae", "mse"] = "mae"
    """The per-request error compared: the mean absolute or the mean squared error of the request's outputs."""

    promotion_max_hours: float = Field(default=168.0, gt=0)
    """A trial that has not had ``promotion_min_labelled`` labelled requests within this many hours is discarded
    (outcome ``expired``: too little ground truth came back to judge it), and retraining resumes."""

    promotion_margin: float = Field(default=0.0, ge=0, lt=1)
    """Relative improvement of the mean error the candidate needs besides the test (0.05: 5% lower)."""

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
