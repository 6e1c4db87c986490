"""A closed window's signals: every test and estimate the detector runs on it, with their metrics exported.

Each signal is one number per window with its own alert level (``DetectorSettings.thresholds``); the verdict
(:mod:`mitiga_detector.levels`) turns them into a level under the trigger policy. A signal that cannot be computed
for a window (no labels yet, a test not due, no validation data in the bundle) is absent, not zero.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from mitiga_detector.evidence import Mean, supported_ratio, z_score

if TYPE_CHECKING:
    from mitiga_core.types import AnyArray
    from mitiga_detector.engines import UnivariateResult
    from mitiga_detector.metrics import DetectorMetrics
    from mitiga_detector.monitor import ModelMonitor
    from mitiga_detector.settings import DetectorSettings
    from mitiga_detector.windows import Window


@dataclass
class WindowSignals:
    values: dict[str, float]
    univariate: UnivariateResult
    distances: dict[str, AnyArray]


def _multivariate(kind: str, monitor: ModelMonitor, window: Window, p_val: float) -> dict[str, float]:
    from mitiga_detector.multivariate import lsdd_test, mmd_test

    test = mmd_test if kind == "mmd" else lsdd_test
    return test(monitor.mmd_reference, window.features, p_val)


def _export_features(monitor: ModelMonitor, uni: UnivariateResult, dist: dict[str, AnyArray], top: int,
                     m: DetectorMetrics, labels: tuple[str, str]) -> None:
    """Per-feature series for the ``top`` most drifted features (every one when 0), aggregates for all: the series
    per model stay bounded whatever its number of features."""
    names = monitor.feature_names
    chosen = range(len(names)) if not top or top >= len(names) else \
        sorted(np.argsort(uni.p_values, kind="stable")[:top].tolist())
    exported = [names[j] for j in chosen]
    for feature in set(monitor.exported_features) - set(exported):  # left the top: its series go
        for gauge in m.per_feature:
            with contextlib.suppress(KeyError):
                gauge.remove(*labels, feature)
    monitor.exported_features = exported
    for j in chosen:
        fl = (*labels, names[j])
        m.p_value.labels(*fl).set(uni.p_values[j])
        m.statistic.labels(*fl).set(uni.statistics[j])
        m.wasserstein.labels(*fl).set(dist["wasserstein"][j])
        m.jensen_shannon.labels(*fl).set(dist["jensen_shannon"][j])
        m.psi.labels(*fl).set(dist["psi"][j])
    for distance in ("wasserstein", "jensen_shannon", "psi"):
        m.distance_max.labels(*labels, distance).set(float(np.max(dist[distance])))


def compute(monitor: ModelMonitor, window: Window, settings: DetectorSettings,
            metrics: DetectorMetrics) -> WindowSignals:
    """Run the window's input and output tests and estimates; export them; return the signal values."""
    m, labels = metrics, (monitor.manifest.name, monitor.manifest.version)
    uni = monitor.inputs.run(window.features)
    dist = monitor.distances.of(window.features)
    _export_features(monitor, uni, dist, settings.feature_series, m, labels)
    share = float(uni.drifted.mean())
    m.share.labels(*labels).set(share)
    m.min_p.labels(*labels).set(float(uni.p_values.min()))
    m.window_rows.labels(*labels).set(len(window))
    m.detected.labels(*labels, "univariate").set(int(uni.is_drift))
    values = {"drift_flag": float(uni.is_drift), "share_drifted": share, "ks_p_value": float(uni.p_values.min())}
    if monitor.outputs is not None:
        columns, _ = monitor.manifest.kind.prediction_columns(window.outputs)
        values["prediction"] = float(monitor.outputs.run(columns).is_drift)
        m.detected.labels(*labels, "prediction").set(values["prediction"])
    monitor.windows_seen += 1
    joint = monitor.manifest.kind.joint_drift_tests  # a forecast window's rows are one series: no joint test
    for kind, every in (("mmd", settings.mmd_every), ("lsdd", settings.lsdd_every)):
        if joint and every and monitor.windows_seen % every == 0:
            result = _multivariate(kind, monitor, window, settings.p_val)
            values[kind] = result["is_drift"]
            (m.mmd_p if kind == "mmd" else m.lsdd_p).labels(*labels).set(result["p_value"])
            m.detected.labels(*labels, kind).set(result["is_drift"])
    if monitor.online is not None:
        values["online"] = float("online" in window.alarms)
    if monitor.sequential is not None:
        values["sequential"] = float("sequential" in window.alarms)
        m.detected.labels(*labels, "sequential").set(values["sequential"])
    if monitor.outliers is not None:
        values["outlier_share"] = float(monitor.outliers.flags(window.features).mean())
        m.outlier_share.labels(*labels).set(values["outlier_share"])
    if monitor.estimator is not None:
        metric = monitor.estimator.metric
        recent = monitor.estimator.window_mean(monitor.estimator.rows(window.features, window.outputs))
        m.estimated.labels(*labels, metric).set(recent.value)
        values[f"estimated_{metric}"] = recent.value  # recorded with the window; no level of its own
        reference = monitor.reference_errors.get(metric) or Mean(monitor.estimator.validation_value, 0.0)
        ratio = supported_ratio(recent, reference, z_score(settings.ratio_confidence),
                                root=metric in monitor.manifest.kind.root_metrics)
        if np.isfinite(ratio):
            values[f"estimated_{metric}_ratio"] = ratio
    return WindowSignals(values, uni, dist)


def performance_signals(monitor: ModelMonitor, skill: float | None, confidence: float) -> dict[str, float]:
    """The realised error relative to the model's own validation error (``mae_ratio``, ``rmse_ratio``;
    ``log_loss_ratio``, ``error_rate_ratio``), in original units as the validation metrics in the manifest are, as
    far as the rows behind both support it at ``confidence`` (:mod:`mitiga_detector.evidence`) and, for forecast
    models, its skill against the naive forecast relative to the same skill on the validation rows
    (``skill_ratio``: scale-free, so a series that moves to another level does not move it by itself), and the
    skill itself (``mase``, the mean absolute scaled error: a model worse than the naive forecast, whatever its
    validation said, is worth retraining)."""
    out = {}
    kind, z = monitor.manifest.kind, z_score(confidence)
    rows = monitor.performance.ratio_rows(monitor.manifest)
    for metric in kind.ratio_metrics:
        reference = monitor.reference_errors.get(metric)
        if reference is None or metric not in rows:
            continue
        ratio = supported_ratio(Mean.of(rows[metric]), reference, z, root=metric in kind.root_metrics)
        if np.isfinite(ratio):
            out[f"{metric}_ratio"] = ratio
    if skill is not None and monitor.reference_skill:
        out["skill_ratio"] = skill / monitor.reference_skill
    if skill is not None and np.isfinite(skill):
        out["mase"] = skill  # the MAE over the naive forecast's: above 1, "tomorrow = today" would do better
    return out
