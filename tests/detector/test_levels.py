from __future__ import annotations

import numpy as np
import pytest

from mitiga_detector.distances import feature_distances
from mitiga_detector.levels import EpisodeTracker, Severity, metric_severity, window_severity
from mitiga_detector.settings import Level, research_thresholds

N, W, C = Severity.NONE, Severity.WARNING, Severity.CRITICAL


@pytest.mark.parametrize(("metric", "value", "expected"), [
    ("drift_flag", 0.0, N), ("drift_flag", 1.0, C),
    ("share_drifted", 0.3, N), ("share_drifted", 0.31, W), ("share_drifted", 0.6, C),
    ("mae", 0.1, N), ("mae", 0.3, W), ("mae", 0.5, C),
    ("rmse", 0.69, N), ("rmse", 0.8, W), ("rmse", 1.2, C),
    ("r2", 1.0, N), ("r2", 0.9, W), ("r2", 0.79, C),
    ("ks_p_value", 0.9, N), ("ks_p_value", 0.6, W), ("ks_p_value", 0.1, C),
])
def test_research_levels(metric: str, value: float, expected: Severity) -> None:
    assert metric_severity(value, research_thresholds()[metric]) == expected


def test_window_severity_uses_only_selected_metrics_and_ignores_nan() -> None:
    levels = research_thresholds()
    values = {"mae": 0.6, "r2": 0.5, "share_drifted": float("nan")}
    assert window_severity(values, levels, ["share_drifted"]) == N
    assert window_severity(values, levels, ["share_drifted", "mae"]) == C
    assert metric_severity(0.5, Level(warning=0.2, critical=0.4, direction="above")) == C


def test_persistence_and_hysteresis() -> None:
    t = EpisodeTracker(persistence=2, clear_after=2)
    assert t.update(C) == (N, False, False)  # one window is not enough
    assert t.update(N)[0] == N
    level, opened, _ = t.update(W)
    assert (level, opened) == (N, False)
    level, opened, _ = t.update(C)
    assert (level, opened) == (W, True)  # W and C held: the lower of the two
    episode = t.episode_id
    assert t.update(C)[0] == C and t.episode_id == episode  # escalates within the episode
    assert t.update(N) == (C, False, False)  # one calm window does not close it
    assert t.update(W)[0] == C  # calm streak broken
    t.update(N)
    assert t.update(N) == (N, False, True) and t.episode_id is None


def test_distances() -> None:
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(2000, 2))
    same = feature_distances(ref, rng.normal(size=(500, 2)))
    moved = feature_distances(ref, rng.normal(size=(500, 2)) + np.array([0.0, 1.0]))
    assert same["psi"].max() < 0.1 and moved["psi"][1] > 0.2 and moved["psi"][0] < 0.1
    assert moved["wasserstein"][1] == pytest.approx(1.0, abs=0.15)
    assert 0 <= same["jensen_shannon"][0] < moved["jensen_shannon"][1] <= 1
