"""Every signal in the verdict, and the trigger policy that decides which of them may retrain."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mitiga_core.pb.mitiga.v1 import events_pb2 as pb
from mitiga_detector.levels import EpisodeTracker, Severity
from mitiga_detector.performance import ErrorStreamDetector
from tests.detector.conftest import Harness, inference, write_bundle
from tests.detector.test_core import stream

SHIFT = {0: 2.0, 1: 2.0, 2: 2.0}


def harness(tmp_path: Path, **settings: object) -> Harness:
    h = Harness(tmp_path, **settings)
    write_bundle(h.store)
    return h


@pytest.mark.parametrize(("policy", "retrains"), [("performance", 0), ("drift", 1), ("any", 1)])
def test_input_drift_the_model_handles_retrains_only_under_the_drift_policies(tmp_path: Path, policy: str,
                                                                              retrains: int) -> None:
    """The inputs move but the model stays as good as on its validation data (the truth is still a + b + c)."""
    h = harness(tmp_path, trigger_policy=policy)
    rng = np.random.default_rng(3)
    stream(h, rng, 3, label=True)
    stream(h, rng, 6, shift=SHIFT, label=True)
    state = h.core.state_of("tab")
    assert len(h.launcher.specs) == retrains
    assert state["level"] == ("warning" if policy == "performance" else "critical")
    last = state["last_window"]
    assert "data" in last["types"] and "concept" not in last["types"] and "estimated" not in last["types"]
    assert last["mae_ratio"] < 1.2
    assert h.value("mitiga_drift_level", model="tab", drift_type="data") == (1 if policy == "performance" else 2)
    h.publisher.stop()


def test_a_model_that_got_worse_retrains_and_the_deciding_signal_is_named(tmp_path: Path) -> None:
    h = harness(tmp_path)
    rng = np.random.default_rng(4)
    stream(h, rng, 3, label=True)
    assert h.drift_events() == []
    stream(h, rng, 4, label=True, error=1.0)
    assert len(h.launcher.specs) == 1
    event = h.drift_events()[-1]
    assert event.level == pb.DRIFT_LEVEL_CRITICAL and list(event.drift_types) == [pb.DRIFT_TYPE_CONCEPT]
    assert event.metrics["mae_ratio"] > 1.5
    # the event names every signal that decided, with its value and the threshold it passed
    deciding = {r.signal: r for r in event.deciding}
    assert event.decided_by == event.deciding[0].signal and set(deciding) <= set(event.signals)
    mae = deciding["mae_ratio"]
    assert (mae.value, mae.threshold, mae.direction) == (pytest.approx(event.metrics["mae_ratio"]), 1.5, "above")
    assert h.value("mitiga_drift_signal", model="tab", signal="mae_ratio") == 2
    h.publisher.stop()


def test_an_episode_kept_open_by_input_drift_stops_retraining_once_the_model_recovers(tmp_path: Path) -> None:
    """The model got worse (one retrain), then recovered while its inputs stayed drifted: the episode stays open and
    critical (levels only escalate within it), but no further attempt is made for the drifted inputs alone."""
    h = harness(tmp_path, cooldown_s=0, max_attempts=5, retry_after_rows=400)
    rng = np.random.default_rng(8)
    stream(h, rng, 3, label=True)
    stream(h, rng, 4, shift=SHIFT, label=True, error=1.0)
    assert len(h.launcher.specs) == 1
    h.state.delete("mitiga:retrain:lock:tab")  # the job ended
    stream(h, rng, 12, shift=SHIFT, label=True)  # still drifted inputs; the error back to the validation error
    state = h.core.state_of("tab")
    assert state["level"] == "critical" and state["episode_id"] is not None  # the episode has not closed
    assert state["last_window"]["mae_ratio"] < 1.2
    assert len(h.launcher.specs) == 1
    stream(h, rng, 4, shift=SHIFT, label=True, error=1.0)  # worse again, same episode: another attempt
    assert len(h.launcher.specs) == 2
    h.publisher.stop()


def test_data_and_concept_drift_are_reported_together(tmp_path: Path) -> None:
    h = harness(tmp_path)
    rng = np.random.default_rng(5)
    stream(h, rng, 3, label=True)
    stream(h, rng, 4, shift=SHIFT, label=True, error=1.0)
    event = h.drift_events()[-1]
    assert {pb.DRIFT_TYPE_DATA, pb.DRIFT_TYPE_CONCEPT} <= set(event.drift_types)
    assert "share_drifted" in event.signals and {"mae_ratio", "rmse_ratio"} & set(event.signals)
    assert h.core.state_of("tab")["last_window"]["types"][:1] == ["data"]
    h.publisher.stop()


def test_relative_levels_are_configurable_per_model(tmp_path: Path) -> None:
    h = Harness(tmp_path, model_thresholds={"tab": {"mae_ratio.critical": 50.0, "mae_ratio.warning": 40.0,
                                                    "rmse_ratio.critical": 50.0, "rmse_ratio.warning": 40.0}},
                level_metrics=["mae_ratio", "rmse_ratio"])
    write_bundle(h.store)
    rng = np.random.default_rng(6)
    stream(h, rng, 2, label=True)
    stream(h, rng, 4, label=True, error=1.0)  # about 12x the validation MAE: under this model's levels
    assert h.launcher.specs == {} and h.core.state_of("tab")["level"] == "none"
    h.publisher.stop()


@pytest.mark.parametrize("kind", ["adwin", "page_hinkley"])
def test_the_error_stream_alarms_on_a_rise_and_never_on_a_fall(kind: str) -> None:
    rng = np.random.default_rng(0)
    low, high = np.abs(rng.normal(0.1, 0.05, 400)), np.abs(rng.normal(2.0, 0.3, 400))
    rising = ErrorStreamDetector(kind)  # type: ignore[arg-type]
    assert not rising.update(low) and rising.update(high)
    falling = ErrorStreamDetector(kind)  # type: ignore[arg-type]
    assert not falling.update(high) and not falling.update(low)


def test_an_error_rise_that_stays_within_the_models_own_error_is_no_alarm() -> None:
    """An easy stretch then an ordinary one: the loss rises, but not above the model's held-out loss (``floor``)."""
    rng = np.random.default_rng(1)
    easy, ordinary = np.abs(rng.normal(0.1, 0.05, 400)), np.abs(rng.normal(0.5, 0.1, 400))
    bounded = ErrorStreamDetector("adwin", floor=0.6)
    assert not bounded.update(easy) and not bounded.update(ordinary)
    unbounded = ErrorStreamDetector("adwin")
    assert not unbounded.update(easy) and unbounded.update(ordinary)


def test_prediction_drift_is_a_signal_of_its_own(tmp_path: Path) -> None:
    h = harness(tmp_path, trigger_policy="drift", level_metrics=["drift_flag", "prediction"])
    rng = np.random.default_rng(7)
    for _ in range(4 * h.settings.window_size // 10):  # inputs as in training, outputs moved
        x = rng.normal(size=(10, 3)).astype(np.float32)
        h.core.handle(inference(x, x.sum(axis=1, keepdims=True) + 3.0))
    event = h.drift_events()[-1]
    assert event.decided_by == "prediction" and list(event.drift_types) == [pb.DRIFT_TYPE_PREDICTION]
    assert len(h.launcher.specs) == 1
    h.publisher.stop()


def test_the_sequential_test_decides_mid_window(tmp_path: Path) -> None:
    h = harness(tmp_path, trigger_policy="drift", window_size=1000)
    rng = np.random.default_rng(8)
    stream(h, rng, 1)
    assert len(h.core.history["tab"]) == 1
    stream(h, rng, 1, shift={0: 1.5})
    first = h.drift_events()[0]
    assert first.decided_by == "sequential" and first.window_size < 200
    assert len(h.launcher.specs) == 1  # an alarm is critical at once: its false-alarm rate is set by its ARL
    assert h.value("mitiga_drift_sequential_alarms_total", model="tab") >= 1
    h.publisher.stop()


def test_no_sequential_alarm_on_a_stable_stream(tmp_path: Path) -> None:
    h = harness(tmp_path, window_size=500)
    stream(h, np.random.default_rng(9), 20)  # 10,000 stable rows
    history = list(h.core.history["tab"])
    assert len(history) == 20 and [r["sequential"] for r in history] == [0.0] * 20  # no window closed early
    h.publisher.stop()


@pytest.mark.parametrize("engine", ["scipy", "alibi"])
def test_the_outlier_share_is_a_signal(tmp_path: Path, engine: str) -> None:
    h = harness(tmp_path, engine=engine, trigger_policy="any", level_metrics=["outlier_share"])
    rng = np.random.default_rng(10)
    stream(h, rng, 2)
    assert h.value("mitiga_outlier_share", model="tab", version="1") < 0.05
    for _ in range(3 * h.settings.window_size // 10):
        x = rng.normal(size=(10, 3)).astype(np.float32)
        x[:3] += 8.0  # 30% of the rows far outside the reference
        h.core.handle(inference(x, x.sum(axis=1, keepdims=True)))
    event = h.drift_events()[-1]
    assert event.decided_by == "outlier_share" and event.metrics["outlier_share"] >= 0.25
    h.publisher.stop()


@pytest.mark.slow  # Alibi's TensorFlow detectors
def test_mmd_and_lsdd_are_signals(tmp_path: Path) -> None:
    import tensorflow as tf

    tf.random.set_seed(0)  # Alibi's permutation tests draw from TF's global generator: what ran before must not matter
    h = harness(tmp_path, trigger_policy="drift", mmd_every=1, lsdd_every=1, level_metrics=["mmd", "lsdd"],
                sequential=False, outliers=False)
    rng = np.random.default_rng(11)
    stream(h, rng, 2)
    assert h.drift_events() == []
    stream(h, rng, 2, shift={0: 1.0, 1: 1.0})
    event = h.drift_events()[-1]
    assert set(event.signals) == {"mmd", "lsdd"} and event.level == pb.DRIFT_LEVEL_CRITICAL
    assert h.value("mitiga_drift_lsdd_p_value", model="tab", version="1") < 0.05
    h.publisher.stop()


@pytest.mark.slow  # Alibi's TensorFlow detectors
def test_the_mmd_online_detector_is_a_signal(tmp_path: Path) -> None:
    h = harness(tmp_path, trigger_policy="drift", online="mmd", online_ert=50, online_window=10,
                online_bootstraps=500, level_metrics=["online"], sequential=False)
    rng = np.random.default_rng(12)
    stream(h, rng, 3, shift={0: 3.0, 1: 3.0, 2: 3.0})
    assert h.value("mitiga_drift_online_alarms_total", model="tab") >= 1
    assert h.drift_events()[0].decided_by == "online"
    h.publisher.stop()


def heteroscedastic(x: np.ndarray) -> np.ndarray:
    """The target is noisy where |a| > 1: the model (a + b + c) errs more there, which its validation rows show."""
    return np.where(np.abs(x[:, :1]) > 1, 1.5, 0.1)


@pytest.mark.parametrize(("shift", "estimated"), [({0: 2.5}, True), ({1: 2.5}, False)])
def test_the_estimated_error_moves_before_labels_only_where_the_model_errs(tmp_path: Path, shift: dict[int, float],
                                                                          estimated: bool) -> None:
    h = Harness(tmp_path)
    write_bundle(h.store, noise=heteroscedastic)
    rng = np.random.default_rng(13)
    stream(h, rng, 2)
    calm = h.value("mitiga_estimated_metric", model="tab", version="1", metric="mae")
    stream(h, rng, 3, shift=shift)  # no labels at all
    after = h.value("mitiga_estimated_metric", model="tab", version="1", metric="mae")
    state = h.core.state_of("tab")
    assert "mae" not in state["last_window"]  # nothing realised yet
    assert "data" in state["last_window"]["types"]
    if estimated:
        assert after > 2 * calm and "estimated" in state["last_window"]["types"]
        assert len(h.launcher.specs) == 1
    else:
        assert after == pytest.approx(calm, rel=0.5) and "estimated" not in state["last_window"]["types"]
        assert h.launcher.specs == {}
    h.publisher.stop()


def test_the_estimate_is_scored_once_labels_arrive(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    write_bundle(h.store, noise=heteroscedastic)
    rng = np.random.default_rng(14)
    for _ in range(3 * h.settings.window_size // 10):
        x = rng.normal(size=(10, 3)).astype(np.float32)
        y = x.sum(axis=1, keepdims=True)
        rid = f"r{rng.integers(1 << 62)}"
        h.core.handle(inference(x, y, request_id=rid))
        truth = y + rng.normal(size=(10, 1)) * heteroscedastic(x)
        from tests.detector.conftest import feedback

        h.core.handle(feedback([(rid, truth[:, 0].tolist())]))
    gap = h.value("mitiga_estimated_metric_error", model="tab", version="1", metric="mae")
    realised = h.value("mitiga_model_performance", model="tab", version="1", metric="mae", units="original")
    assert gap is not None and abs(gap) < 0.3 * realised
    h.publisher.stop()


def test_each_signal_keeps_its_own_persistence_across_a_checkpoint() -> None:
    tracker = EpisodeTracker(1, 3)
    persistence = {"sequential": 1}
    assert tracker.confirm({"share_drifted": Severity.CRITICAL, "sequential": Severity.CRITICAL}, persistence, 2) \
        == {"share_drifted": Severity.NONE, "sequential": Severity.CRITICAL}
    restored = EpisodeTracker(1, 3)
    restored.restore(tracker.snapshot())
    # a window with no labels leaves mae_ratio's streak alone; share_drifted is confirmed on its second window
    assert restored.confirm({"share_drifted": Severity.WARNING}, persistence, 2) == {"share_drifted": Severity.WARNING}


def forecast_rows(rng: np.random.Generator, n: int, step_sd: float, skilled: bool) -> tuple[np.ndarray, ...]:
    """Windows of a random walk, the next value, and a forecast that catches half of each step (skilled) or
    guesses a step of the same size at random (no better than the naive forecast)."""
    start = rng.normal(100, 10, size=(n, 1))
    x = (start + np.cumsum(rng.normal(0, step_sd, size=(n, 5)), axis=1)).astype(np.float32)
    step = rng.normal(0, step_sd, size=(n, 1))
    y = (x[:, -1:] + step).astype(np.float32)
    guess = 0.5 * step if skilled else rng.normal(0, step_sd, size=(n, 1))
    return x, (x[:, -1:] + guess).astype(np.float32), y


def write_forecaster(h: Harness, rng: np.random.Generator) -> None:
    """A forecaster whose validation rows are skilled at a step scale of 1 (its validation MAE in the manifest)."""
    from mitiga_core.bundle import ModelManifest
    from mitiga_core.bundle.manifest import TrainingInfo

    x_val, pred_val, y_val = forecast_rows(rng, 300, 1.0, skilled=True)
    val_mae = float(np.abs(pred_val - y_val).mean())
    val_rmse = float(np.sqrt(((pred_val - y_val) ** 2).mean()))
    manifest = ModelManifest(name="fc", task="forecast", features=["open"], window=5,
                             training=TrainingInfo(metrics={"val_mae": val_mae, "val_rmse": val_rmse}))

    def populate(folder: Path, version: str) -> None:
        np.save(folder / "reference.npy", x_val[:, -1:])
        np.savez(folder / "validation.npz", x=x_val, pred=pred_val, y=y_val)
        (folder / "manifest.json").write_text(manifest.model_copy(update={"version": version}).model_dump_json())

    h.store.write_version("fc", populate)


def serve_forecasts(h: Harness, rng: np.random.Generator, step_sd: float, skilled: bool) -> dict[str, Any]:
    from tests.detector.conftest import feedback

    for i in range(20):
        x, pred, y = forecast_rows(rng, 10, step_sd, skilled)
        h.core.handle(inference(x, pred, name="fc", request_id=f"f{i}"))
        h.core.handle(feedback([(f"f{i}", y[:, 0].tolist())], name="fc"))
    return h.core.state_of("fc")


@pytest.mark.parametrize(("step_sd", "skilled", "retrains"), [(5.0, True, 0), (1.0, False, 1)])
def test_the_skill_ratio_judges_a_forecaster_against_tomorrow_equals_today(tmp_path: Path, step_sd: float,
                                                                          skilled: bool, retrains: int) -> None:
    h = Harness(tmp_path, window_size=50, level_metrics=["skill_ratio"])
    rng = np.random.default_rng(15)
    write_forecaster(h, rng)
    # skilled but five times as volatile (five times the MAE), or unskilled as volatile
    last = serve_forecasts(h, rng, step_sd, skilled)["last_window"]
    assert len(h.launcher.specs) == retrains
    assert (last["skill_ratio"] > 1.5) == (not skilled)
    h.publisher.stop()


@pytest.mark.parametrize(("scale_free", "retrains"), [(True, 0), (False, 1)])
def test_a_forecast_series_grown_more_volatile_warns_but_retrains_only_when_scale_counts(
        tmp_path: Path, scale_free: bool, retrains: int) -> None:
    """Five times the volatility, the same skill: the MAE is five times the validation MAE (and the naive
    forecast's too). Every signal takes part; the error ratios in the series' units only warn by default."""
    h = Harness(tmp_path, window_size=50, forecast_scale_free=scale_free)
    rng = np.random.default_rng(17)
    write_forecaster(h, rng)
    state = serve_forecasts(h, rng, 5.0, skilled=True)
    last = state["last_window"]
    assert last["mae_ratio"] > 3 and last["mase"] < 1
    assert last["signals"]["mae_ratio"] == "critical"
    assert len(h.launcher.specs) == retrains
    assert state["level"] == ("warning" if scale_free else "critical")
    h.publisher.stop()


def test_the_sequential_statistics_follow_the_cusum_recursion_row_by_row() -> None:
    """The batched solution equals the textbook recursion S_t = max(0, S_t-1 + z_t - k), alarms and restarts
    included, whatever the batch sizes."""
    from mitiga_detector.sequential import SequentialDetector

    rng = np.random.default_rng(16)
    reference = rng.normal(size=(500, 3))
    stream = rng.normal(size=(3000, 3))
    stream[1500:, 1] += 1.5  # alarms, so the restarts are compared too
    batched, one_by_one = SequentialDetector(reference, arl=2000), SequentialDetector(reference, arl=2000)
    expected: list[int] = []
    up, down = np.zeros_like(one_by_one._up), np.zeros_like(one_by_one._down)
    scores = one_by_one._scores(stream)
    z = np.column_stack([scores, scores.sum(axis=1) / one_by_one._sum_scale])
    for i, row in enumerate(z):
        up = np.maximum(0.0, up + row - one_by_one._ks[:, None])
        down = np.maximum(0.0, down - row - one_by_one._ks[:, None])
        if (up > one_by_one._h[:, None]).any() or (down > one_by_one._h[:, None]).any():
            expected.append(i)
            up[:], down[:] = 0.0, 0.0
    start = 0
    for size in rng.integers(1, 60, size=400):
        chunk = stream[start : start + size]
        if not len(chunk):
            break
        alarms = batched.update(chunk)
        assert alarms == [i - start for i in expected if start <= i < start + len(chunk)]
        start += len(chunk)
    assert len(expected) >= 2 and batched.alarms == len(expected)
