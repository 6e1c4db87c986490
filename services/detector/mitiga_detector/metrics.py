"""Prometheus metrics of the detector: values, not only flags. Prefix ``mitiga_``, base units, ``_total`` counters."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from mitiga_detector.levels import METRIC_DRIFT_TYPE

if TYPE_CHECKING:
    from mitiga_detector.settings import Level

MV = ["model", "version"]
MVF = ["model", "version", "feature"]


class DetectorMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry or CollectorRegistry()
        self.p_value = Gauge("mitiga_drift_p_value", "Per-feature p-value of the univariate test.", MVF, registry=r)
        self.statistic = Gauge("mitiga_drift_statistic", "Per-feature test statistic.", MVF, registry=r)
        self.wasserstein = Gauge("mitiga_drift_wasserstein", "Per-feature Wasserstein distance.", MVF, registry=r)
        self.jensen_shannon = Gauge("mitiga_drift_jensen_shannon", "Per-feature Jensen-Shannon distance (base 2).",
                                    MVF, registry=r)
        self.psi = Gauge("mitiga_drift_psi", "Per-feature population stability index.", MVF, registry=r)
        self.distance_max = Gauge("mitiga_drift_distance_max", "Largest distance over every feature of the last "
                                  "window (wasserstein, jensen_shannon, psi).", [*MV, "distance"], registry=r)
        self.detected = Gauge("mitiga_drift_detected", "1 when the test flagged drift in the last window.",
                              [*MV, "test"], registry=r)
        self.share = Gauge("mitiga_drift_share_features", "Share of features that drifted (0..1).", MV, registry=r)
        self.min_p = Gauge("mitiga_drift_ks_p_value_min", "Smallest per-feature p-value in the last window.", MV,
                           registry=r)
        self.level = Gauge("mitiga_drift_level", "Confirmed level: 0 none, 1 warning, 2 critical.",
                           ["model", "drift_type"], registry=r)
        self.model_level = Gauge("mitiga_model_level", "The model's verdict under the trigger policy, held for its "
                                 "episode: 0 none, 1 warning, 2 critical (MitigaModelCritical pages on 2).", MV,
                                 registry=r)
        self.deciding = Gauge("mitiga_model_deciding_signal", "The value of each signal that decided the model's "
                              "current level, with the level and the threshold it passed.",
                              ["model", "signal", "severity", "threshold", "direction"], registry=r)
        self.retrain_running = Gauge("mitiga_retrain_running", "1 while a retraining run holds the model's lock.",
                                     ["model"], registry=r)
        self.retrain_paused = Gauge("mitiga_retrain_paused", "1 while the model's automatic retraining is paused "
                                    "(circuit breaker or an admin); an admin resumes it.", ["model"], registry=r)
        self.awaiting_approval = Gauge("mitiga_promotion_awaiting_approval", "1 while a challenger that won waits "
                                       "for an admin's approval.", MV, registry=r)
        self.approvals = Counter("mitiga_promotion_approvals", "Decisions on challengers awaiting approval "
                                 "(approved, rejected, expired).", ["model", "outcome"], registry=r)
        self.mmd_p = Gauge("mitiga_drift_mmd_p_value", "p-value of the multivariate MMD test.", MV, registry=r)
        self.lsdd_p = Gauge("mitiga_drift_lsdd_p_value", "p-value of the multivariate LSDD test.", MV, registry=r)
        self.outlier_share = Gauge("mitiga_outlier_share", "Share of the last window's rows that are outliers "
                                   "against the reference.", MV, registry=r)
        self.estimated = Gauge("mitiga_estimated_metric", "Error estimated from the inputs and predictions of the "
                               "last window, before labels (original units).", [*MV, "metric"], registry=r)
        self.estimate_error = Gauge("mitiga_estimated_metric_error", "Estimated minus realised error on the "
                                    "labelled window (original units): how far the estimate is off.",
                                    [*MV, "metric"], registry=r)
        self.signal = Gauge("mitiga_drift_signal", "Confirmed level of each signal in the last window: 0 none, "
                            "1 warning, 2 critical (before the trigger policy's cap).", ["model", "signal"],
                            registry=r)
        self.perf = Gauge("mitiga_model_performance", "Error metrics on the labelled window (mae, mse, rmse, r2).",
                          [*MV, "metric", "units"], registry=r)
        self.window_rows = Gauge("mitiga_drift_window_rows", "Rows in the last tested window.", MV, registry=r)
        self.perf_rows = Gauge("mitiga_performance_window_rows", "Labelled rows in the performance window.", MV,
                               registry=r)
        self.events = Counter("mitiga_detector_events", "Events processed.", ["type"], registry=r)
        self.rejected = Counter("mitiga_detector_events_rejected", "Events sent to the dead-letter topic.",
                                ["reason"], registry=r)
        self.state_used = Gauge("mitiga_state_memory_used_bytes", "Memory the state store (Redis) uses.",
                                registry=r)
        self.state_max = Gauge("mitiga_state_memory_max_bytes", "The state store's memory limit (Redis maxmemory; "
                               "0 = none). With noeviction, writes fail past it.", registry=r)
        self.duplicates = Counter("mitiga_detector_events_duplicate", "Redelivered events skipped.", registry=r)
        self.reused_ids = Counter("mitiga_detector_request_ids_reused", "Predictions not stored because another "
                                  "request of the model already holds their request id.", ["model"], registry=r)
        self.evicted = Counter("mitiga_detector_predictions_evicted", "Stored predictions evicted before their "
                               "ground truth came, to keep the model within MITIGA_PREDICTIONS_MAX(_BYTES).",
                               ["model"], registry=r)
        self.seconds = Histogram("mitiga_detector_processing_seconds", "Processing time (stage event, window, or "
                                 "build: a model version's monitor fitted from its bundle on its first event).",
                                 ["stage"], buckets=(0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 2.5, 5),
                                 registry=r)
        self.monitors = Gauge("mitiga_detector_monitors", "Model versions this replica holds a monitor for (the "
                              "models of its partitions that sent events).", registry=r)
        self.joined = Counter("mitiga_feedback_joined", "Feedback items joined to their prediction.", ["model"],
                              registry=r)
        self.unmatched = Counter("mitiga_feedback_unmatched", "Feedback items that found no prediction.",
                                 ["model", "reason"], registry=r)
        self.parked = Gauge("mitiga_feedback_parked", "Feedback items read before their prediction, waiting for it.",
                            registry=r)
        self.episodes = Counter("mitiga_drift_episodes", "Drift episodes opened.", ["model", "level"], registry=r)
        self.concept_alarms = Counter("mitiga_concept_drift_alarms", "Change alarms on the error stream.", ["model"],
                                      registry=r)
        self.online_alarms = Counter("mitiga_drift_online_alarms", "Alarms of the online detector.", ["model"],
                                     registry=r)
        self.sequential_alarms = Counter("mitiga_drift_sequential_alarms", "Alarms of the sequential test.",
                                         ["model"], registry=r)
        self.metric = Gauge("mitiga_drift_metric", "The leveled metrics of the last window (drift_flag, "
                            "share_drifted, ks_p_value, and mae/mse/rmse/r2 in the configured units).",
                            [*MV, "metric"], registry=r)
        self.threshold = Gauge("mitiga_drift_threshold", "The configured warning/critical level of each metric; "
                               "direction says which side is bad. Alert rules compare against it.",
                               ["model", "metric", "severity", "direction", "drift_type"], registry=r)
        self.lag = Gauge("mitiga_consumer_lag", "Records not yet consumed by the detector.", ["topic", "partition"],
                         registry=r)
        self.retrain_outcomes = Counter("mitiga_retrain_outcomes", "Finished retraining runs by outcome (promoted, "
                                        "refused by the gate, failed, rollout_failed).", ["model", "outcome"],
                                        registry=r)
        self.jobs = Counter("mitiga_retrain_jobs", "Retraining jobs that finished, by state (succeeded, failed).",
                            ["model", "state"], registry=r)
        self.triggers = Counter("mitiga_retrain_triggers", "Retraining trigger decisions.", ["model", "outcome"],
                                registry=r)
        self.promotions = Counter("mitiga_promotion_decisions", "Live trials decided by the promotion policy "
                                  "(outcome promoted, discarded, or expired: too few labelled requests in time).",
                                  ["model", "mode", "outcome"], registry=r)
        self.trial_labelled = Gauge("mitiga_promotion_labelled", "Labelled requests both the champion and the "
                                    "candidate on trial answered.", MV, registry=r)
        self.trial_error = Gauge("mitiga_promotion_error", "Mean per-request error of the trial's paired requests "
                                 "(role champion or candidate).", [*MV, "role"], registry=r)
        self.trial_p_value = Gauge("mitiga_promotion_p_value", "The paired test's p-value when the trial was "
                                   "decided (candidate's error lower).", MV, registry=r)
        self.trial_unpaired = Counter("mitiga_promotion_unpaired", "Labelled requests of a trial whose candidate "
                                      "prediction had not arrived when their ground truth joined (they wait for it "
                                      "feedback_wait_s; one that never comes was not made or was dropped).",
                                      ["model"], registry=r)

    def show_levels(self, model: str, levels: dict[str, Level]) -> None:
        """Export the model's configured warning/critical level of each metric (the alert rules compare with them)."""
        for metric, level in levels.items():
            for severity in ("warning", "critical"):
                self.threshold.labels(model, metric, severity, level.direction,
                                      METRIC_DRIFT_TYPE.get(metric, "data")).set(getattr(level, severity))

    @property
    def per_feature(self) -> tuple[Gauge, ...]:
        return self.p_value, self.statistic, self.wasserstein, self.jensen_shannon, self.psi

    @staticmethod
    def drop(gauge: Gauge, model: str) -> None:
        """Remove every series of ``gauge`` for ``model``."""
        for family in gauge.collect():
            for sample in family.samples:
                if sample.labels.get("model") == model:
                    with contextlib.suppress(KeyError):  # a sample per label set; removed once
                        gauge.remove(*sample.labels.values())

    def forget_model(self, model: str) -> None:
        """Drop the model's gauges: another detector replica owns the model now and exports them (a stale copy here
        would keep its alerts firing). Counters stay: they count what this replica did."""
        for gauge in vars(self).values():
            if isinstance(gauge, Gauge):
                self.drop(gauge, model)
