"""The ``mitiga`` command: registry listing, inspection and rollback; clear errors for user mistakes."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from mitiga_cli.__main__ import app
from mitiga_core.store import FilesystemModelStore
from tests.detector.conftest import three_champions, write_bundle

runner = CliRunner()


@pytest.fixture
def store(tmp_path: Path) -> FilesystemModelStore:
    return three_champions(tmp_path)  # versions 1, 2, 3; each became champion


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def test_models_list_and_show(store: FilesystemModelStore) -> None:
    code, out = run("models", "list", "--store", str(store.root))
    assert code == 0 and "tab" in out and "1, 2, 3" in out
    code, out = run("models", "show", "tab", "--store", str(store.root))
    assert code == 0 and "v3" in out and "champion" in out and "1 → 2 → 3" in out
    code, out = run("models", "show", "tab", "--version", "1", "--store", str(store.root))
    assert code == 0 and "tab v1" in out


def test_models_show_speaks_classification(tmp_path: Path) -> None:
    from tests.detector.test_classifiers import write_classifier

    store = FilesystemModelStore(tmp_path)
    write_classifier(store)
    code, out = run("models", "show", "q", "--store", str(store.root))
    out = " ".join(out.split())  # as the terminal wraps it
    assert code == 0 and "(multiclass" in out, out
    assert "answers: probabilities FP32 [-1, 3], label BYTES [-1]; classes: low, mid, high" in out
    assert "a class name or index" in out and "gate metric by default: log_loss" in out
    assert "val_accuracy" in out and "val_f1" in out


def test_models_show_gives_the_live_trial_and_its_decisions_with_their_numbers(store: FilesystemModelStore) -> None:
    from mitiga_core.promotion import Candidate, start_trial

    store.set_champion("tab", "2")
    store.record_decision("tab", {"time": "2026-11-30T08:00:00", "promote": True, "version": "3", "stage": "canary",
                                  "metric": "mae", "champion": 0.5, "challenger": 0.4, "holdout_rows": 60,
                                  "reason": "challenger better"})
    start_trial(store, "tab", Candidate(version="3", mode="canary", champion="2", canary_percent=15))
    code, out = run("models", "show", "tab", "--store", str(store.root))
    assert code == 0 and "on live trial: v3 in canary against champion v2" in out and "15% of requests" in out
    assert "on canary trial" in out
    store.record_decision("tab", {"time": "2026-11-30T09:00:00", "trial": True, "promote": False, "version": "3",
                                  "stage": "canary", "metric": "mae", "champion": 0.5, "challenger": 0.49,
                                  "labelled": 200, "p_value": 0.31, "reason": "not lower"})
    store.set_candidate("tab", None)
    code, out = run("models", "show", "tab", "--store", str(store.root))
    assert code == 0 and "on live trial" not in out and "discarded after canary trial" in out and "0.31" in out
    code, out = run("models", "list", "--store", str(store.root))
    assert code == 0 and "discarded after canary" in out and "trial v3" in out  # the cell may wrap


def test_rollback_returns_to_the_previous_champion(store: FilesystemModelStore) -> None:
    code, out = run("models", "rollback", "tab", "--store", str(store.root))
    assert code == 0 and "3 → 2" in out
    assert store.champion("tab") == "2"
    assert store.decisions("tab")[-1]["rollback"] is True
    code, _ = run("models", "rollback", "tab", "--to", "1", "--store", str(store.root))
    assert code == 0 and store.champion("tab") == "1"


def test_a_rollback_the_services_could_not_hear_says_so(store: FilesystemModelStore,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.conftest import free_port

    monkeypatch.setenv("MITIGA_STATE", "redis")
    monkeypatch.setenv("MITIGA_REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    monkeypatch.setenv("MITIGA_REDIS_RETRY_S", "0")
    code, out = run("models", "rollback", "tab", "--store", str(store.root))
    assert code == 2 and "the store changed, but the services were not told" in out and "redis" in out, out
    assert store.champion("tab") == "2"  # as it says
    code, out = run("models", "rollback", "tab", "--no-announce", "--store", str(store.root))
    assert code == 0 and "2 → 3" in out and store.champion("tab") == "3"


@pytest.mark.parametrize(("args", "needle"), [
    (["models", "rollback", "tab", "--to", "9"], "no version '9'"),
    (["models", "rollback", "ghost"], "has no champion"),
    (["models", "show", "ghost"], "not found"),
])
def test_user_mistakes_are_short_errors_and_change_nothing(store: FilesystemModelStore, args: list[str],
                                                           needle: str) -> None:
    code, out = run(*args, "--store", str(store.root))
    assert code == 2 and needle in out and "Traceback" not in out
    assert store.champion("tab") == "3"


def test_missing_store_is_a_clear_error(tmp_path: Path) -> None:
    code, out = run("models", "list", "--store", str(tmp_path / "nowhere"))
    assert code == 2 and "no model store" in out


def test_status_without_a_detector_still_lists_models(store: FilesystemModelStore) -> None:
    code, out = run("status", "--store", str(store.root), "--detector", "http://127.0.0.1:9")
    assert code == 0 and "tab" in out and "unreachable" in out


@pytest.mark.slow
def test_retrain_follows_a_manual_run_to_the_gate(tmp_path: Path) -> None:
    from mitiga_standalone.stack import StandaloneStack
    from tests.retrainer.conftest import regressor_store

    regressor_store(tmp_path, name="m")
    stack = StandaloneStack(tmp_path, detector={"admin_token": "tok"})
    stack.start()
    try:
        code, out = run("retrain", "m", "--detector", stack.detector.url, "--token", "tok", "--epochs", "3",
                        "--strategy", "full_history")
        assert code == 0, (out, stack.launcher.results)
        decision = stack.store.decisions("m")[-1]
        assert "requested" in out and ("promoted as version 2" if decision["promote"] else "refused") in out
        assert decision["trigger"] == "manual" and decision["strategy"] == "full_history"
        from mitiga_core.events import Topic, decode_as
        from mitiga_core.pb.mitiga.v1 import events_pb2 as pb

        events = [decode_as(e, pb.RetrainProgress) for e in stack.bus.messages(Topic.PROGRESS)]
        assert [e.epoch for e in events if e.status == "running"] == [0, 1, 2, 3]
        assert events[-1].status == ("promoted" if decision["promote"] else "refused")
        assert events[-1].epochs == 3 and events[-1].reason
        code, out = run("retrain", "m", "--detector", stack.detector.url, "--token", "wrong")
        assert code == 2 and "invalid admin token" in out
    finally:
        stack.stop()


@pytest.mark.slow
def test_forecast_a_date_range_from_a_csv(reference_store: Path, tmp_path: Path) -> None:
    import shutil

    from mitiga_research.datasets import load_prices

    from tests.inference.conftest import start_service

    root = tmp_path / "store"
    shutil.copytree(reference_store, root)
    service = start_service(root, models=["lstm"])
    csv = tmp_path / "amzn.csv"
    load_prices("amzn").loc["2003-06-01":"2004-06-30"].rename(columns=str.title).rename_axis("Date").to_csv(csv)
    try:
        out = tmp_path / "chart.png"
        code, text = run("forecast", "lstm", str(csv), "--start", "2004-01-01", "--end", "2004-03-31",
                         "--url", service.url, "--out", str(out))
        assert code == 0, text
        assert "2004-01-02 .. 2004-03-31" in text and "MAE" in text and out.stat().st_size > 1000
        code, text = run("forecast", "lstm", str(csv), "--column", "Nope", "--url", service.url)
        assert code == 2 and "'Nope'" in text
        code, text = run("forecast", "lstm", str(csv), "--start", "2030-01-01", "--url", service.url)
        assert code == 2 and "no dates" in text
    finally:
        service.running.stop()


@pytest.mark.parametrize(("status", "code"), [("promoted", 0), ("refused", 0), ("failed", 1), ("rollout_failed", 1)])
def test_retrain_stops_following_at_every_terminal_status(admin_service, status: str, code: int) -> None:
    """Every outcome the retrainer can report ends the wait at once, whatever the follow timeout; a run that did
    not carry out the gate's decision exits non-zero."""
    import threading
    import time

    from mitiga_core.progress import write_progress

    url, _store, state, launcher = admin_service
    result: dict[str, tuple[int, str]] = {}
    follower = threading.Thread(target=lambda: result.setdefault("cli", run(
        "retrain", "tab", "--detector", url, "--token", "tok", "--timeout-s", "120")), daemon=True)
    follower.start()
    deadline = time.monotonic() + 30
    while not launcher.specs:
        assert time.monotonic() < deadline, "no retrain launched"
        time.sleep(0.1)
    request_id = next(iter(launcher.specs))
    write_progress(state, request_id, status="running", epoch=1, epochs=3)
    write_progress(state, request_id, status=status, reason="the gate's words")
    follower.join(60)  # far below the follow timeout: the CLI saw the outcome and stopped
    assert not follower.is_alive(), f"`mitiga retrain` still waiting after {status!r}"
    exit_code, out = result["cli"]
    assert exit_code == code and f"tab: {status}" in out and "the gate's words" in out, out


@pytest.mark.slow
def test_up_runs_the_services_and_the_console_until_interrupted(reference_store: Path, tmp_path: Path) -> None:
    """`mitiga up`: inference, detector and the console answer on the ports given; the console lists the store's
    models; Ctrl-C, once it says it is up, stops everything with a clean exit."""
    import shutil
    import signal
    import subprocess
    import sys
    import threading

    import httpx

    from tests.conftest import free_port, wait_for

    store = tmp_path / "models"
    shutil.copytree(reference_store, store)
    ports = {"inference": free_port(), "detector": free_port(), "console": free_port()}
    process = subprocess.Popen(
        [sys.executable, "-m", "mitiga_cli", "up", "--store", str(store), "--inference-port", str(ports["inference"]),
         "--detector-port", str(ports["detector"]), "--console-port", str(ports["console"])],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(process.stdout.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()

    def said(text: str) -> bool:
        assert process.poll() is None, f"mitiga up exited: {''.join(lines)[-2000:]}"
        return text in " ".join("".join(lines).split())

    try:
        wait_for(lambda: said("(Ctrl-C stops)"), 240, "mitiga up to say it is up", explain=lambda: "".join(lines))
        for service, port in ports.items():  # each answers its own readiness probe (the models load after start)
            wait_for(lambda port=port: httpx.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=30  # type: ignore[misc]
                                                 ).status_code == 200, 180, f"mitiga up's {service} to be ready")
        page = httpx.get(f"http://127.0.0.1:{ports['console']}/", timeout=30)
        assert page.status_code == 200 and ">lstm<" in page.text and ">air<" in page.text
        assert said(f"console http://127.0.0.1:{ports['console']}")  # the URL is printed
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=120)
        reader.join(10)
        process.stdout.close()  # type: ignore[union-attr]
    assert process.returncode == 0, "".join(lines)[-2000:]


@pytest.mark.slow  # starts the services as processes, serving the reference models
def test_up_interrupted_while_it_starts_stops_what_it_started(reference_store: Path, tmp_path: Path) -> None:
    """Ctrl-C while `mitiga up` is still starting (its inference port open, the console not yet): it finishes
    starting, stops everything and exits cleanly; it never hangs or leaves a traceback."""
    import shutil
    import signal
    import socket
    import subprocess
    import sys

    from tests.conftest import free_port, wait_for

    store = tmp_path / "models"
    shutil.copytree(reference_store, store)
    inference = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "mitiga_cli", "up", "--store", str(store), "--inference-port", str(inference),
         "--detector-port", str(free_port()), "--console-port", str(free_port())],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def listening() -> bool:
        assert process.poll() is None, "mitiga up exited before it was interrupted"
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", inference)) == 0

    try:
        wait_for(listening, 240, "mitiga up's inference port", every_s=0.05)
    finally:
        process.send_signal(signal.SIGINT)
        out, _ = process.communicate(timeout=120)
    assert process.returncode == 0 and "Traceback" not in out, out[-2000:]


@pytest.mark.slow
def test_models_upload_registers_a_version_through_the_admin_api(tmp_path: Path) -> None:
    """`mitiga models upload`: a plain .keras file becomes a served champion with Keras's own predictions; a wrong
    token or a missing file is a short error that registers nothing."""
    import os
    import subprocess
    import sys

    import httpx
    import numpy as np

    from tests.inference.conftest import start_service

    subprocess.run([sys.executable, str(Path(__file__).parents[1] / "inference" / "make_plain_model.py"),
                    str(tmp_path)], check=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    service = start_service(tmp_path / "store")
    try:
        code, out = run("models", "upload", "plain", str(tmp_path / "nope.keras"), "--url", service.url,
                        "--token", "s3cret")
        assert code == 2 and "no such file" in out
        code, out = run("models", "upload", "plain", str(tmp_path / "plain.keras"), "--url", service.url,
                        "--token", "wrong", "--features", "a,b,c")
        assert code == 2 and "invalid admin token" in out and service.store.list_versions("plain") == []
        code, out = run("models", "upload", "plain", str(tmp_path / "plain.keras"), "--url", service.url,
                        "--token", "s3cret", "--features", "a,b,c")
        assert code == 0 and "uploaded plain version 1" in " ".join(out.split()), out
        assert service.store.champion("plain") == "1"
        with np.load(tmp_path / "expected.npz") as expected:
            x, y = expected["x"], expected["y"]
        body = {"inputs": [{"name": "features", "shape": [5, 3], "datatype": "FP32", "data": x.tolist()}]}
        served = httpx.post(f"{service.url}/v2/models/plain/infer", json=body).json()
        np.testing.assert_allclose(served["outputs"][0]["data"], y.reshape(-1), rtol=1e-5, atol=1e-6)
    finally:
        service.running.stop()


@pytest.mark.slow  # serves the detector's API over windows of every default signal
def test_report_writes_the_detectors_report_with_its_plots(tmp_path: Path) -> None:
    """`mitiga report`: the detector's HTML report of a model that has tested windows, with its plots; a model
    without windows is a short error and writes nothing."""
    import numpy as np

    from mitiga_core.bus import InMemoryBus
    from mitiga_core.events import Topic
    from mitiga_core.state import InMemoryStateStore
    from mitiga_detector.app import create_app
    from mitiga_detector.settings import DetectorSettings
    from tests.conftest import serve, wait_for
    from tests.detector.conftest import RecordingLauncher, inference

    store = FilesystemModelStore(tmp_path / "store")
    write_bundle(store)
    bus = InMemoryBus()
    app = create_app(DetectorSettings(window_size=30, sequential=False), bus=bus, store=store,
                     state=InMemoryStateStore(), launcher=RecordingLauncher())
    running = serve(app)
    try:
        rng = np.random.default_rng(1)
        for i in range(6):
            x = rng.normal(size=(10, 3)).astype(np.float32) + (2.0 if i >= 3 else 0.0)
            bus.publish(Topic.INFERENCE, inference(x, x.sum(axis=1, keepdims=True), request_id=f"r{i}"))
        wait_for(lambda: app.state.core.state_of("tab")["windows"] == 2, 60, "two tested windows")
        out = tmp_path / "report.html"
        code, text = run("report", "tab", "--detector", running.url, "--out", str(out))
        assert code == 0 and str(out) in " ".join(text.split())
        page = out.read_text()
        # the reference-vs-current histograms and the p-values over time; no error plot without ground truth
        assert page.count("data:image/png;base64,") == 2 and "drift report: tab" in page
        code, text = run("report", "ghost", "--detector", running.url, "--out", str(tmp_path / "ghost.html"))
        assert code == 2 and "ghost" in text and not (tmp_path / "ghost.html").exists()
    finally:
        running.stop()


@pytest.mark.slow
def test_experiment_production_on_a_short_range_agrees_with_an_independent_computation(tmp_path: Path) -> None:
    """`mitiga experiment production` over the first half of 2004: the naive forecast's MAE equals numpy's on the
    same days; each policy's retrain count is what its own decision log holds; the JSON and the plot are written."""
    import json

    import numpy as np
    from mitiga_research.datasets import load_prices

    code, out = run("experiment", "production", "--end", "2004-06-30", "--epochs", "2", "--retrain-epochs", "1",
                    "--out", str(tmp_path))
    assert code == 0, out
    result = json.loads((tmp_path / "production.json").read_text())
    assert (tmp_path / "production.png").stat().st_size > 10_000
    prices = load_prices("amzn")["open"]
    days = prices.loc["2004-01-01":"2004-06-30"]
    before = prices.shift(1).loc[days.index]  # "tomorrow = today": yesterday's open
    naive = float(np.mean(np.abs(days.to_numpy() - before.to_numpy())))
    summary = result["summary"]
    assert summary["persistence"]["mae"] == pytest.approx(naive, rel=1e-5)
    for policy in ("informed", "blind"):
        assert summary[policy]["retrains"] == len(result["runs"][policy]["decisions"])
        steps = result["runs"][policy]["steps"]
        assert [s["step"] for s in steps] == ["2004-01-01", "2004-04-01"]
        assert sum(s["rows"] for s in steps) == len(days)
    assert summary["frozen"]["mae"] > 0 and summary["frozen"]["retrains"] == 0
    assert set(summary["targets"]) == {"informed_mae_le_30pct_of_frozen", "informed_within_10pct_of_blind",
                                       "informed_retrains_le_third_of_blind"}


@pytest.mark.slow
def test_experiment_incremental_reports_each_step_beside_the_naive_forecast(tmp_path: Path) -> None:
    """`mitiga experiment incremental` on one architecture and two steps: each step's test days are the 10% after
    its training share, the naive forecast's MSE on them equals numpy's, the spread is the seeds' own; bad options
    are clear errors."""
    import json

    import numpy as np
    from mitiga_research.datasets import load_prices

    code, out = run("experiment", "incremental", "--archs", "lstm", "--repeats", "2", "--epochs", "1",
                    "--fractions", "0.5,0.8", "--out", str(tmp_path))
    assert code == 0, out
    result = json.loads((tmp_path / "incremental.json").read_text())
    assert (tmp_path / "incremental.png").stat().st_size > 10_000
    prices = load_prices("amzn")["open"]
    n = len(prices)
    steps = result["archs"]["lstm"]
    assert [s["train_fraction"] for s in steps] == [0.5, 0.8]
    for step in steps:
        lo, hi = int(n * step["train_fraction"]), int(n * (step["train_fraction"] + 0.1))
        days = prices.iloc[lo:hi]
        assert (step["test_first"], step["test_last"], step["test_rows"]) == (
            str(days.index[0].date()), str(days.index[-1].date()), hi - lo)
        naive = float(np.mean((days.to_numpy() - prices.iloc[lo - 1:hi - 1].to_numpy()) ** 2))
        assert step["naive_mse"] == pytest.approx(naive, rel=1e-5)
        assert len(step["mse"]) == 2 and all(m > 0 for m in step["mse"])
        assert step["mse_mean"] == pytest.approx(np.mean(step["mse"])) and step["mse_std"] == pytest.approx(
            np.std(step["mse"]))
    assert "naive: tomorrow = today" in out and f"{steps[1]['naive_mse']:.3g}" in out
    for bad, says in (("--fractions", "between 0 and 1"), ("--archs", "choose among")):
        code, out = run("experiment", "incremental", bad, "1.5" if bad == "--fractions" else "gru",
                        "--out", str(tmp_path / "bad"))
        assert code == 2 and says in out and not (tmp_path / "bad").exists()


def test_retraining_pause_status_and_resume(admin_service) -> None:
    url, _store, _state, _launcher = admin_service
    code, out = run("retraining", "pause", "tab", "--reason", "labels look wrong", "--by", "alice",
                    "--detector", url, "--token", "tok")
    assert code == 0 and "paused since" in out and "by alice: labels look wrong" in out, out
    code, out = run("retraining", "status", "tab", "--detector", url)
    assert code == 0 and "labels look wrong" in out and "pauses at 3" in out, out
    code, out = run("retraining", "resume", "tab", "--detector", url)  # no token: refused, still paused
    assert code == 2 and "bearer" in out.lower(), out
    code, out = run("retraining", "resume", "tab", "--detector", url, "--token", "tok")
    assert code == 0 and "tab: automatic retraining runs" in out, out
    code, out = run("retraining", "status", "nope", "--detector", url)
    assert code == 2 and "nope" in out, out


def test_models_show_gives_the_units_people_read_errors_in(tmp_path: Path) -> None:
    store = FilesystemModelStore(tmp_path)
    write_bundle(store, "co", units="mg/m³")
    code, out = run("models", "show", "co", "--store", str(tmp_path))
    assert code == 0 and "units: mg/m³ (answers and errors)" in out, out
