"""The detector core on event streams: detection, attribution, false alarms, feedback joins, drift types, triggers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mitiga_core import retrain_request
from mitiga_core.errors import EventDecodeError
from mitiga_core.events import Topic, decode_as, encode
from mitiga_core.labelled import LabelledLog
from mitiga_core.pb.mitiga.v1 import events_pb2 as pb
from tests.detector.conftest import Harness, feedback, inference, write_bundle


def stream(h: Harness, rng: np.random.Generator, windows: int, *, shift: dict[int, float] | None = None,
           batch: int = 10, error: float = 0.0, label: bool = False) -> None:
    """Send ``windows`` windows of inputs (optionally shifted), predictions = a + b + c, and optionally feedback
    whose truth differs from the prediction by ``error`` (plus small noise)."""
    for _ in range(windows * h.settings.window_size // batch):
        x = rng.normal(size=(batch, 3)).astype(np.float32)
        for j, delta in (shift or {}).items():
            x[:, j] += delta
        y = x.sum(axis=1, keepdims=True)
        rid = f"r{rng.integers(1 << 62)}"
        h.core.handle(inference(x, y, request_id=rid))
        if label:
            truth = y[:, 0] + error + rng.normal(scale=0.05, size=batch)
            h.core.handle(feedback([(rid, truth.tolist())]))


def test_mean_shift_on_one_feature_is_detected_and_attributed(harness: Harness) -> None:
    rng = np.random.default_rng(1)
    stream(harness, rng, 3)
    stream(harness, rng, 3, shift={1: 1.0})
    events = harness.drift_events()
    assert events, "no drift event"
    first = events[0]
    assert pb.DRIFT_TYPE_DATA in first.drift_types
    assert first.top_features[0].feature == "b" and first.top_features[0].drifted
    assert [f.feature for f in first.top_features if f.drifted] == ["b"]
    assert first.share_drifted == pytest.approx(1 / 3)
    assert first.top_features[0].psi > 0.2
    assert harness.value("mitiga_drift_p_value", model="tab", version="1", feature="b") < 1e-3
    assert harness.value("mitiga_drift_share_features", model="tab", version="1") == pytest.approx(1 / 3)


@pytest.mark.slow  # 200 windows through every default signal
@pytest.mark.parametrize("engine", ["scipy", "alibi"])
def test_false_alarms_on_a_stationary_stream_stay_within_the_rate(tmp_path: Path, engine: str) -> None:
    h = Harness(tmp_path, engine=engine, p_val=0.05, window_size=50)
    write_bundle(h.store, seed=3)
    stream(h, np.random.default_rng(7), 200, batch=50)
    flagged = [r["drift_flag"] for r in h.core.history["tab"]]
    assert len(flagged) == 200
    rate = sum(flagged) / len(flagged)
    # Bonferroni over 3 features keeps the per-window rate at or below p_val; allow binomial noise (3 sigma)
    assert rate <= 0.05 + 3 * (0.05 * 0.95 / 200) ** 0.5, rate
    # an episode needs 2 flagged windows in a row: about 200 * 0.05**2 = 0.5 expected
    critical_episodes = {r["episode_id"] for r in h.core.history["tab"] if r["level"] == "critical"}
    assert len(critical_episodes) <= 3
    h.publisher.stop()


def test_feedback_join_and_performance_metrics(harness: Harness) -> None:
    rng = np.random.default_rng(5)
    truths, preds = [], []
    for i in range(6):
        x = rng.normal(size=(10, 3)).astype(np.float32)
        y = x.sum(axis=1, keepdims=True)
        harness.core.handle(inference(x, y, request_id=f"q{i}"))
        truth = (y[:, 0] + rng.normal(scale=0.5, size=10)).astype(np.float32)
        truths.append(truth)
        preds.append(y[:, 0])
        harness.core.handle(feedback([(f"q{i}", truth.tolist())]))
    harness.core.handle(feedback([("never-served", [1.0])]))
    harness.core.handle(feedback([("q0", [1.0] * 10)]))  # already joined: the prediction is gone
    harness.core.handle(inference(np.zeros((2, 3), np.float32), np.zeros((2, 1), np.float32), request_id="two"))
    harness.core.handle(feedback([("two", [1.0, 2.0, 3.0])]))  # wrong size
    stream(harness, rng, 1, batch=10)  # close a window so metrics are computed
    t, p = np.concatenate(truths), np.concatenate(preds)
    mae, mse = np.mean(np.abs(p - t)), np.mean((p - t) ** 2)
    r2 = 1 - np.sum((p - t) ** 2) / np.sum((t - t.mean()) ** 2)
    get = harness.value
    assert get("mitiga_model_performance", model="tab", version="1", metric="mae", units="original") == pytest.approx(mae, rel=1e-5)
    assert get("mitiga_model_performance", model="tab", version="1", metric="rmse", units="original") == pytest.approx(mse**0.5, rel=1e-5)
    assert get("mitiga_model_performance", model="tab", version="1", metric="r2", units="original") == pytest.approx(r2, rel=1e-5)
    scale = harness.core.monitor("tab", "1").manifest.output_scaler.scale[0]
    assert get("mitiga_model_performance", model="tab", version="1", metric="mae", units="scaled") == pytest.approx(mae / scale, rel=1e-4)
    assert get("mitiga_feedback_joined_total", model="tab") == 6
    harness.core.checkpoint()
    # "never-served" and the second "q0" may yet see their prediction: they wait (see the parking tests)
    assert get("mitiga_feedback_parked") == 2
    assert get("mitiga_feedback_unmatched_total", model="tab", reason="no_prediction") is None
    assert get("mitiga_feedback_unmatched_total", model="tab", reason="size_mismatch") == 1
    assert get("mitiga_performance_window_rows", model="tab", version="1") == 60


def test_error_only_change_is_typed_concept(harness: Harness) -> None:
    rng = np.random.default_rng(11)
    stream(harness, rng, 3, label=True, error=0.0)
    assert harness.drift_events() == []
    stream(harness, rng, 4, label=True, error=3.0)
    events = harness.drift_events()
    assert events and events[-1].level == pb.DRIFT_LEVEL_CRITICAL
    for event in events:
        assert pb.DRIFT_TYPE_CONCEPT in event.drift_types and pb.DRIFT_TYPE_DATA not in event.drift_types
    assert harness.value("mitiga_concept_drift_alarms_total", model="tab") >= 1
    assert harness.core.state_of("tab")["last_window"]["types"] == ["concept"]


def test_trigger_is_deduplicated_under_repeated_critical_windows(tmp_path: Path) -> None:
    harness = Harness(tmp_path, trigger_policy="drift")  # input drift alone retrains
    write_bundle(harness.store)
    rng = np.random.default_rng(2)
    stream(harness, rng, 2)
    stream(harness, rng, 8, shift={0: 2.0, 1: 2.0, 2: 2.0})
    assert len(harness.launcher.specs) == 1
    spec = next(iter(harness.launcher.specs.values()))
    assert spec.args == ["mitiga_retrainer"] and spec.labels["mitiga.io/trigger"] == "informed"
    request = retrain_request.parse(spec.env[retrain_request.ENV])  # the Job gets the request the detector published
    assert (request.model_name, request.base_version, request.trigger, request.request_id) == (
        "tab", "1", "informed", spec.name)
    harness.publisher.stop()
    harness.publisher.start()
    assert [decode_as(e, pb.RetrainRequest) for e in harness.bus.messages(Topic.RETRAIN)] == [request]
    # the episode closes, a new one opens inside the cooldown: no second retrain
    stream(harness, rng, 4)
    stream(harness, rng, 6, shift={0: 2.0, 1: 2.0, 2: 2.0})
    assert len(harness.launcher.specs) == 1
    assert harness.value("mitiga_retrain_triggers_total", model="tab", outcome="requested") == 1
    assert harness.value("mitiga_retrain_triggers_total", model="tab", outcome="cooldown") >= 2
    harness.publisher.stop()
    requests = harness.bus.messages(Topic.RETRAIN)
    assert len(requests) == 1 and requests[0].headers["ce_type"] == "io.mitiga.retrain.v1"


def test_lock_holds_when_cooldown_is_off(tmp_path: Path) -> None:
    h = Harness(tmp_path, cooldown_s=0, trigger_policy="drift")
    write_bundle(h.store)
    rng = np.random.default_rng(4)
    for _ in range(2):
        stream(h, rng, 4)
        stream(h, rng, 6, shift={0: 2.0, 1: 2.0, 2: 2.0})
    assert len(h.launcher.specs) == 1
    assert h.value("mitiga_retrain_triggers_total", model="tab", outcome="locked") >= 2
    h.state.delete("mitiga:retrain:lock:tab")  # the retrainer finished
    stream(h, rng, 4)
    stream(h, rng, 6, shift={0: 2.0, 1: 2.0, 2: 2.0})
    assert len(h.launcher.specs) == 2
    h.publisher.stop()


@pytest.mark.parametrize(("mode", "outcome"), [("alert_only", "alert_only"), ("off", "off")])
def test_trigger_modes(tmp_path: Path, mode: str, outcome: str) -> None:
    h = Harness(tmp_path, trigger=mode, trigger_policy="drift")
    write_bundle(h.store)
    stream(h, np.random.default_rng(2), 5, shift={0: 2.0, 1: 2.0, 2: 2.0})
    assert h.launcher.specs == {}
    assert h.value("mitiga_retrain_triggers_total", model="tab", outcome=outcome) >= 1
    assert h.drift_events()  # alerts still flow
    h.publisher.stop()


def test_manifest_thresholds_override_settings(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    write_bundle(h.store, thresholds={"mae.critical": 0.05, "mae.warning": 0.01})
    levels = h.core.monitor("tab", "1").levels(h.settings.thresholds)
    assert levels["mae"].critical == 0.05 and levels["rmse"].critical == 1.0
    levels = h.core.monitor("tab", "1").levels(h.settings.thresholds, {"mae.critical": 0.07, "r2.critical": 0.68})
    assert levels["mae"].critical == 0.07 and levels["mae"].warning == 0.01 and levels["r2"].critical == 0.68
    h.publisher.stop()


def test_redelivered_events_change_nothing(harness: Harness) -> None:
    x = np.ones((5, 3), np.float32)
    envelope = inference(x, x.sum(axis=1, keepdims=True), request_id="dup", event_id="same")
    harness.core.handle(envelope)
    harness.core.handle(envelope)
    assert harness.core.monitor("tab", "1").window.rows == 5
    assert harness.value("mitiga_detector_events_duplicate_total") == 1


@pytest.mark.parametrize("bad", [
    lambda: inference(np.ones((2, 3), np.float32), np.ones((2, 1), np.float32), name="ghost"),
    lambda: inference(np.ones((2, 4), np.float32), np.ones((2, 1), np.float32)),
    lambda: inference(np.ones((2, 3), np.float32), np.ones((3, 1), np.float32)),
])
def test_unusable_events_raise_decode_errors(harness: Harness, bad) -> None:
    with pytest.raises(EventDecodeError):
        harness.core.handle(bad())


def test_forecast_models_test_the_series_values(tmp_path: Path) -> None:
    from mitiga_core.bundle import ModelManifest, Scaler

    h = Harness(tmp_path, window_size=40)
    series = np.random.default_rng(0).normal(10, 1, size=(600, 1)).astype(np.float32)
    manifest = ModelManifest(name="fc", task="forecast", features=["open"], window=5,
                             input_scaler=Scaler(), output_scaler=Scaler())

    def populate(folder: Path, version: str) -> None:
        np.save(folder / "reference.npy", series)
        (folder / "manifest.json").write_text(manifest.model_copy(update={"version": version}).model_dump_json())

    h.store.write_version("fc", populate)
    rng = np.random.default_rng(1)
    for level in (10.0, 10.0, 14.0, 14.0):
        x = rng.normal(level, 1, size=(40, 5)).astype(np.float32)
        h.core.handle(inference(x, x[:, -1:], name="fc"))
    history = list(h.core.history["fc"])
    assert [r["drift_flag"] for r in history] == [0.0, 0.0, 1.0, 1.0]
    assert list(history[-1]["p_values"]) == ["open"]
    h.publisher.stop()


@pytest.mark.slow
def test_mmd_runs_at_its_cadence_and_flags_a_shift(tmp_path: Path) -> None:
    h = Harness(tmp_path, mmd_every=2, window_size=60)
    write_bundle(h.store)
    rng = np.random.default_rng(8)
    stream(h, rng, 2)
    assert h.value("mitiga_drift_mmd_p_value", model="tab", version="1") > 0.01
    stream(h, rng, 2, shift={0: 1.0, 2: 1.0})
    assert h.value("mitiga_drift_mmd_p_value", model="tab", version="1") < 0.01
    assert h.value("mitiga_drift_detected", model="tab", version="1", test="mmd") == 1
    h.publisher.stop()


@pytest.mark.slow
def test_online_detector_alarms_on_a_shift(tmp_path: Path) -> None:
    h = Harness(tmp_path, online="cvm", online_ert=50, online_window=10, online_bootstraps=600)
    write_bundle(h.store, rows=300)
    rng = np.random.default_rng(3)
    stream(h, rng, 2)  # 100 stable rows: about 2 alarms expected at an ERT of 50
    stable = h.value("mitiga_drift_online_alarms_total", model="tab") or 0
    stream(h, rng, 2, shift={0: 2.0, 1: 2.0, 2: 2.0})
    shifted = (h.value("mitiga_drift_online_alarms_total", model="tab") or 0) - stable
    assert shifted >= stable + 4, (stable, shifted)
    h.publisher.stop()


def test_joined_feedback_is_kept_as_labelled_rows_for_the_retrainer(harness: Harness) -> None:
    from mitiga_core.labelled import LabelledLog

    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    harness.core.handle(inference(x, x.sum(axis=1, keepdims=True), request_id="lab"))
    harness.core.handle(feedback([("lab", [5.0, 11.0])]))
    assert LabelledLog(harness.state).read("tab") is None  # staged until the consumer's checkpoint
    harness.core.checkpoint()
    data = LabelledLog(harness.state).read("tab")
    assert data is not None
    np.testing.assert_array_equal(data.x, x)
    assert data.y[:, 0].tolist() == [5.0, 11.0] and data.dates[0].startswith("2024-")


def test_a_new_version_starts_a_fresh_episode(tmp_path: Path) -> None:
    harness = Harness(tmp_path, trigger_policy="drift")
    write_bundle(harness.store)
    rng = np.random.default_rng(6)
    stream(harness, rng, 3, shift={0: 2.0, 1: 2.0, 2: 2.0})
    assert harness.core.state_of("tab")["level"] == "critical"
    write_bundle(harness.store, seed=1)  # version 2, as a promoted challenger would be
    for _ in range(harness.settings.window_size // 10):
        x = rng.normal(size=(10, 3)).astype(np.float32)
        harness.core.handle(inference(x, x.sum(axis=1, keepdims=True), version="2"))
    state = harness.core.state_of("tab")
    assert state["level"] == "none" and state["episode_id"] is None
    assert state["last_window"]["version"] == "2"


def test_a_still_critical_episode_retries_until_its_attempts_run_out(tmp_path: Path) -> None:
    h = Harness(tmp_path, cooldown_s=0, max_attempts=3, trigger_policy="drift", retry_after_rows=0)
    write_bundle(h.store)
    rng = np.random.default_rng(12)
    for _ in range(8):  # each retrain "finishes" (releases the lock) but does not help
        stream(h, rng, 1, shift={0: 2.0, 1: 2.0, 2: 2.0})
        h.state.delete("mitiga:retrain:lock:tab")
    names = sorted(h.launcher.specs)
    assert len(names) == 3
    episode = h.core.state_of("tab")["episode_id"][:12]
    assert sorted(names) == sorted([f"retrain-tab-{episode}", f"retrain-tab-{episode}-1", f"retrain-tab-{episode}-2"])
    assert h.value("mitiga_retrain_triggers_total", model="tab", outcome="exhausted") >= 1
    h.publisher.stop()


def test_blind_retraining_follows_the_data_time_schedule(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    h = Harness(tmp_path, trigger="off", blind_every="month", window_size=20)
    write_bundle(h.store)
    rng = np.random.default_rng(0)
    for month, windows in ((1, 2), (2, 2), (3, 1)):
        for _ in range(windows):
            x = rng.normal(size=(20, 3)).astype(np.float32)
            h.core.handle(inference(x, x.sum(axis=1, keepdims=True), when=datetime(2004, month, 10, tzinfo=UTC)))
            h.state.delete("mitiga:retrain:lock:tab")  # each job ends before the next window
    assert sorted(h.launcher.specs) == ["retrain-tab-blind-2004-02", "retrain-tab-blind-2004-03"]
    spec = h.launcher.specs["retrain-tab-blind-2004-02"]
    blind = retrain_request.parse(spec.env[retrain_request.ENV])
    assert blind.trigger == "blind" and blind.episode_id == ""
    assert h.value("mitiga_retrain_triggers_total", model="tab", outcome="blind_requested") == 2
    h.publisher.stop()


def test_a_job_that_dies_without_reporting_releases_the_lock_and_is_announced(tmp_path: Path) -> None:
    from mitiga_core.events import decode_as
    from mitiga_core.jobs import JobState

    h = Harness(tmp_path, cooldown_s=0)
    h.state.set("mitiga:retrain:lock:tab", b"retrain-tab-abc")
    h.core.job_finished({"mitiga.io/model": "tab"}, "retrain-tab-other", JobState.FAILED)
    assert h.state.get("mitiga:retrain:lock:tab") == b"retrain-tab-abc"  # another run's lock stays
    h.core.job_finished({"mitiga.io/model": "tab"}, "retrain-tab-abc", JobState.SUCCEEDED)
    assert h.state.get("mitiga:retrain:lock:tab") == b"retrain-tab-abc"  # a finished job released it itself
    h.core.job_finished({"mitiga.io/model": "tab"}, "retrain-tab-abc", JobState.FAILED)
    assert h.state.get("mitiga:retrain:lock:tab") is None
    h.publisher.stop()
    progress = [decode_as(e, pb.RetrainProgress) for e in h.bus.messages(Topic.PROGRESS)]
    assert [(p.request_id, p.status) for p in progress] == [("retrain-tab-other", "failed"),
                                                             ("retrain-tab-abc", "failed")]
    assert h.value("mitiga_retrain_jobs_total", model="tab", state="failed") == 2
    assert h.value("mitiga_retrain_jobs_total", model="tab", state="succeeded") == 1


def test_a_reused_request_id_never_takes_over_a_stored_prediction(harness: Harness) -> None:
    """Ground truth joins the request it was sent for, even when a later request reuses the id (the inference
    service refuses that with a 409; this is the detector's own guard, e.g. across inference replicas)."""
    honest_x, honest_y = np.ones((3, 3), np.float32), np.full((3, 1), 3.0, np.float32)
    harness.core.handle(inference(honest_x, honest_y, request_id="order-1", event_id="e1"))
    forged_x, forged_y = np.full((3, 3), 9.0, np.float32), np.full((3, 1), 27.0, np.float32)
    harness.core.handle(inference(forged_x, forged_y, request_id="order-1", event_id="e2"))
    # the same id twice in one batch: the first keeps it
    batch = pb.InferenceEventBatch()
    for event_id, value in (("e3", 1.0), ("e4", 5.0)):
        one = inference(np.full((1, 3), value, np.float32), np.full((1, 1), value, np.float32), request_id="twin",
                        event_id=event_id)
        batch.events.append(decode_as(one, pb.InferenceEvent))
    harness.core.handle(encode(batch, source="test", key="tab"))
    assert harness.value("mitiga_detector_request_ids_reused_total", model="tab") == 2
    harness.core.handle(inference(honest_x, honest_y, request_id="order-1", event_id="e1"))  # a redelivery
    assert harness.value("mitiga_detector_request_ids_reused_total", model="tab") == 2  # is not a reuse
    harness.core.handle(feedback([("order-1", [3.0, 3.0, 3.0]), ("twin", [1.0])]))
    harness.core.checkpoint()
    rows = LabelledLog(harness.state).read("tab")
    assert rows is not None
    np.testing.assert_array_equal(rows.x, np.vstack([honest_x, np.ones((1, 3), np.float32)]))
    assert list(rows.sources) == ["order-1", "order-1", "order-1", "twin"]


def test_an_episode_that_used_its_attempts_retries_only_once_the_model_got_markedly_worse(tmp_path: Path) -> None:
    """The gate refused the challengers while the champion held up; years later the model is far worse in the same
    episode: it must not be left without retraining for ever, nor retrain on every window."""
    from mitiga_detector.levels import pressure
    from mitiga_detector.settings import Level
    from mitiga_detector.trigger import RetrainTrigger

    h = Harness(tmp_path, cooldown_s=0, max_attempts=2, rearm_factor=1.5, retry_after_rows=50, rearm_rows=400)
    trigger = RetrainTrigger(h.settings, h.state, h.launcher, h.publisher)
    outcomes = []
    # (pressure, labelled rows so far): each job ends (refused) before the next window
    for value, rows in ((1.2, 100), (1.2, 120), (1.2, 160), (1.3, 220), (1.7, 300), (1.9, 330), (2.0, 400),
                        (2.0, 740), (2.0, 780)):
        outcomes.append(trigger.fire("tab", "1", "episode-1", value, rows))
        h.state.delete("mitiga:retrain:lock:tab")
    assert outcomes == ["requested",
                        "awaiting_data",  # 20 new labelled rows: the gate would see what it refused again
                        "requested",  # 60 new rows
                        "exhausted", "exhausted",  # its attempts used; not much worse, not much new data
                        "requested",  # 1.9 >= 1.5 x 1.2: the model got markedly worse
                        "exhausted",
                        "requested",  # 410 new rows since: enough new evidence to try again
                        "awaiting_data"]
    assert len(h.launcher.specs) == 4
    levels = {"mae_ratio": Level(warning=1.2, critical=1.5), "r2": Level(warning=1, critical=0.8, direction="below")}
    assert pressure({"mae_ratio": 3.0, "r2": 0.4}, levels, ["mae_ratio", "r2"]) == pytest.approx(2.0)
    assert pressure({"mae_ratio": 3.0}, levels, ["r2"]) == 0.0
    h.publisher.stop()


def test_per_feature_series_follow_the_most_drifted_features_and_the_aggregates_cover_all(tmp_path: Path) -> None:
    """With feature_series=1 the series per model stay bounded: only the most drifted feature's per-feature series
    are exported (a feature leaving the top loses its series), the largest distance over every feature beside."""
    h = Harness(tmp_path, feature_series=1)
    write_bundle(h.store)
    rng = np.random.default_rng(5)
    stream(h, rng, 2, shift={1: 2.0})

    def exported(name: str) -> set[str]:
        return {f for f in "abc" if h.value(name, model="tab", version="1", feature=f) is not None}

    for name in ("mitiga_drift_p_value", "mitiga_drift_statistic", "mitiga_drift_wasserstein",
                 "mitiga_drift_jensen_shannon", "mitiga_drift_psi"):
        assert exported(name) == {"b"}, name
    psi_b = h.value("mitiga_drift_psi", model="tab", version="1", feature="b")
    assert h.value("mitiga_drift_distance_max", model="tab", version="1", distance="psi") == psi_b
    stream(h, rng, 2, shift={2: 3.0})  # now c drifts, b is back
    assert exported("mitiga_drift_p_value") == {"c"} and exported("mitiga_drift_psi") == {"c"}
    assert h.value("mitiga_drift_share_features", model="tab", version="1") == pytest.approx(1 / 3)
    every = Harness(tmp_path / "every", feature_series=0)
    write_bundle(every.store)
    stream(every, rng, 1)
    assert {f for f in "abc" if every.value("mitiga_drift_p_value", model="tab", version="1", feature=f) is not None} \
        == {"a", "b", "c"}


def test_a_model_with_many_features_exports_five_series_for_each_of_the_top_features_only(tmp_path: Path) -> None:
    features = [f"f{i:02d}" for i in range(30)]
    h = Harness(tmp_path)  # the default: 10
    write_bundle(h.store, features=features)
    rng = np.random.default_rng(2)
    for _ in range(h.settings.window_size // 10):
        x = rng.normal(size=(10, 30)).astype(np.float32)
        h.core.handle(inference(x, x[:, :3].sum(axis=1, keepdims=True), request_id=f"r{rng.integers(1 << 62)}",
                                features=features))
    per_feature = [s for family in h.metrics.registry.collect() for s in family.samples if "feature" in s.labels]
    assert len(per_feature) == 5 * 10
    assert len({s.labels["feature"] for s in per_feature}) == 10


def test_a_model_exports_the_levels_of_the_metrics_it_has(harness: Harness) -> None:
    """A regressor's windows export the levels of its own metrics (alert rules and dashboards read them beside the
    metric), not those of a classifier's: the series per model stay few (issue 31)."""
    def levels() -> set[str]:
        return {s.labels["metric"] for family in harness.metrics.registry.collect() for s in family.samples
                if s.name == "mitiga_drift_threshold" and s.labels["model"] == "tab"}

    harness.core.monitor("tab", "1")
    assert levels() == set()
    stream(harness, np.random.default_rng(6), 1, label=True)
    metrics = {s.labels["metric"] for family in harness.metrics.registry.collect() for s in family.samples
               if s.name == "mitiga_drift_metric" and s.labels["model"] == "tab"}
    shown = levels()
    assert {"drift_flag", "share_drifted", "ks_p_value", "mae"} <= shown
    assert shown == metrics & set(harness.settings.thresholds)
    assert not shown & {"accuracy", "f1", "log_loss", "error_rate_ratio"}
