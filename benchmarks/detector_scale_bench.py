"""A detector that keeps up (issue 31, P4) and a thousand models per detector replica (P8).

P4: the inference service's 1-row peak (wrk, 16 connections, the research LSTM) and the detector core's sustained rate
on 1-row events in the same run, with every default signal on (Alibi KS on the inputs and the predictions, the
distances, the sequential test, the outlier forest and the loss estimate, for a 13-feature regressor whose bundle has
validation rows). Events come as the inference service publishes them: one bus message per model per linger
(``MITIGA_EVENT_LINGER_S``), holding the events of that linger at the inference peak; single-event messages beside.
Goal: the core at >= 3x the inference peak. A table gives each signal's cost per window, per event and per row.

P8: the core's rate on 10-row events spread over 10 and over 1,000 models, the memory each model adds, and the time
``/metrics`` takes to render with 1,000 models. Goals: >= 90% of the 10-model rate, <= 0.5 MB per model, < 1 s.
"""

from __future__ import annotations

import gc
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import free_port, lstm_store, rss_mb, start, stop, write_report
from inference_bench import body, measured

FEATURES = 13
WINDOW = 100
MODELS = int(os.environ.get("BENCH_MODELS", "1000"))
EVENTS = 12 * MODELS
"""10-row events in the P8 runs (before them, as warm-up, a quarter more, and at least a window's worth a model)."""
rng = np.random.default_rng(31)
COEF = rng.normal(size=FEATURES)


def _rows(n: int) -> tuple[np.ndarray, np.ndarray]:
    x = rng.normal(size=(n, FEATURES)).astype(np.float32)
    return x, (x @ COEF).astype(np.float32).reshape(-1, 1)


def write_models(folder: Path, models: int) -> Any:
    """A model store of ``models`` regressors (m0, m1, ...), each with its reference (1,000 rows) and validation rows
    (500, so the loss estimate is on)."""
    from mitiga_core.bundle import ModelManifest
    from mitiga_core.store import FilesystemModelStore

    store = FilesystemModelStore(folder)
    reference, _ = _rows(1000)
    vx, vpred = _rows(500)
    vy = vpred + rng.normal(scale=0.3, size=vpred.shape).astype(np.float32)
    for i in range(models):
        manifest = ModelManifest(name=f"m{i}", task="regression", features=[f"f{j}" for j in range(FEATURES)])

        def populate(path: Path, version: str, manifest: ModelManifest = manifest) -> None:
            np.save(path / "reference.npy", reference)
            np.savez(path / "validation.npz", x=vx, pred=vpred, y=vy)
            (path / "manifest.json").write_text(manifest.model_copy(update={"version": version}).model_dump_json())

        store.write_version(manifest.name, populate)
    return store


def _core(folder: Path, models: int) -> Any:
    """A detector core on embedded adapters watching the models of :func:`write_models`."""
    from mitiga_core.bus import InMemoryBus
    from mitiga_core.publisher import EventPublisher
    from mitiga_core.state import InMemoryStateStore
    from mitiga_detector.core import DetectorCore
    from mitiga_detector.metrics import DetectorMetrics
    from mitiga_detector.settings import DetectorSettings

    store = write_models(folder, models)
    metrics = DetectorMetrics()
    publisher = EventPublisher(InMemoryBus(), source="bench", maxsize=1_000_000, registry=metrics.registry)
    return DetectorCore(DetectorSettings(trigger="off"), store=store, state=InMemoryStateStore(), publisher=publisher,
                        metrics=metrics, launcher=None)


def messages(models: list[str], events: int, rows: int, per_message: int, tag: str) -> list[Any]:
    """``events`` inference events of ``rows`` rows, for the models in turn, ``per_message`` of a model's events per
    bus message (an ``InferenceEventBatch`` as the publisher sends them, or a lone event)."""
    from mitiga_core.events import encode
    from mitiga_core.pb.mitiga.v1 import events_pb2 as pb

    out, pending = [], {m: [] for m in models}
    for i in range(events):
        model = models[i % len(models)]
        x, y = _rows(rows)
        event = pb.InferenceEvent(event_id=f"{tag}{i}", request_id=f"{tag}{i}", model_name=model, model_version="1",
                                  inputs=pb.Matrix(shape=list(x.shape), data=x.reshape(-1).tolist()),
                                  outputs=pb.Matrix(shape=list(y.shape), data=y.reshape(-1).tolist()))
        event.time.GetCurrentTime()
        if per_message == 1:
            out.append(encode(event, source="bench", key=model))
            continue
        pending[model].append(event)
        if len(pending[model]) == per_message:
            out.append(encode(pb.InferenceEventBatch(events=pending.pop(model)), source="bench", key=model))
            pending[model] = []
    return out


def _rate(core: Any, messages: list[Any], events: int) -> float:
    """Events per second the core handles (checkpointing after every 500 messages, as the consumer does)."""
    start_t = time.perf_counter()
    for i, message in enumerate(messages, 1):
        core.handle(message)
        if i % 500 == 0:
            core.checkpoint()
    core.checkpoint()
    return events / (time.perf_counter() - start_t)


def _per_signal(core: Any) -> dict[str, float]:
    """Milliseconds per 100-row window of each signal, on a warm monitor."""
    monitor = core.monitor("m0", "1")
    x, y = _rows(WINDOW)
    columns, _ = monitor.manifest.kind.prediction_columns(y)
    features = x
    work = {
        "KS on the inputs (Alibi)": lambda: monitor.inputs.run(features),
        "KS on the predictions (Alibi)": lambda: monitor.outputs.run(columns),
        "distances (Wasserstein, Jensen-Shannon, PSI)": lambda: monitor.distances.of(features),
        "outlier forest": lambda: monitor.outliers.flags(features),
        "loss estimate": lambda: monitor.estimator.rows(features, y),
        "sequential test (the window's rows at once)": lambda: monitor.sequential.update(features),
        "sequential test (row by row)": lambda: [monitor.sequential.update(features[i:i + 1]) for i in range(WINDOW)],
    }
    out = {}
    for name, call in work.items():
        call()
        start_t, n = time.perf_counter(), 0
        while time.perf_counter() - start_t < 1.0:
            call()
            n += 1
        out[name] = (time.perf_counter() - start_t) / n * 1e3
    return out


def _rss_mb() -> float:
    gc.collect()
    return rss_mb()


def inference_peak() -> dict[str, float]:
    store = lstm_store()
    port = free_port()
    proc = start([sys.executable, "-m", "mitiga_inference"], port, {
        "MITIGA_MODEL_STORE_PATH": str(store), "MITIGA_PORT": str(port), "MITIGA_GRPC_PORT": str(free_port()),
        "MITIGA_HOST": "127.0.0.1", "MITIGA_MODELS": '["lstm"]'})
    try:
        return measured(proc, f"http://127.0.0.1:{port}/v2/models/lstm/infer", body(1), 16)
    finally:
        stop(proc)


def keeps_up(peak: float) -> dict[str, Any]:
    """P4: the core's rate on 1-row events, batched as published and one per message, and the per-signal costs."""
    from mitiga_inference.settings import InferenceSettings

    per_message = max(1, round(peak * InferenceSettings().event_linger_s))
    events = 30_000
    out: dict[str, Any] = {"events_per_message": per_message}
    with tempfile.TemporaryDirectory() as tmp:
        core = _core(Path(tmp), 1)
        core.monitor("m0", "1")  # built before the clock starts
        _rate(core, messages(["m0"], 3_000, 1, per_message, "w"), 3_000)  # warm-up: windows, memo
        out["events_per_s_batched"] = _rate(core, messages(["m0"], events, 1, per_message, "b"), events)
        out["events_per_s_single"] = _rate(core, messages(["m0"], events // 3, 1, 1, "s"), events // 3)
        out["signals_ms_per_window"] = _per_signal(core)
    return out


def thousand_models() -> dict[str, Any]:
    """P8: 10-row events over 10 and over MODELS models; memory per model; /metrics with MODELS models."""
    from mitiga_core.exposition import Exposition
    from mitiga_detector.heap import Heap

    out: dict[str, Any] = {"models": MODELS}
    for models in (10, MODELS):
        with tempfile.TemporaryDirectory() as tmp:
            core = _core(Path(tmp), models)
            names = [f"m{i}" for i in range(models)]
            core.monitor(names[0], "1")
            before = _rss_mb()
            start_t = time.perf_counter()
            for name in names[1:]:
                core.monitor(name, "1")
            out[f"build_s_{models}"] = time.perf_counter() - start_t
            Heap().after_batch(core.monitors_built)  # as the detector process does after a batch that built some
            out[f"mb_per_model_{models}"] = (_rss_mb() - before) / max(models - 1, 1)
            order = names * (EVENTS // models)  # as many events for 10 models as for MODELS; every model closes
            random.Random(models).shuffle(order)  # at least one window, so its series exist
            events = len(order)
            # steady state: every model closes a window before the measure (its first window creates its series)
            warm = names * max(WINDOW // 10, EVENTS // 4 // models)
            _rate(core, messages(warm, len(warm), 10, 1, "w"), len(warm))
            out[f"events_per_s_{models}"] = _rate(core, messages(order, events, 10, 1, "e"), events)
            renders, exposition = [], Exposition(core.metrics.registry)  # as the service's /metrics writes it
            for _ in range(3):  # the median of three scrapes (the first writes each series' name and labels)
                start_t = time.perf_counter()
                text = exposition.render()
                renders.append(time.perf_counter() - start_t)
            out[f"metrics_s_{models}"] = sorted(renders)[1]
            out[f"metrics_series_{models}"] = sum(1 for line in text.splitlines() if not line.startswith(b"#"))
            out[f"metrics_bytes_{models}"] = len(text)
            gc.unfreeze()  # this core is done with
    return out


def main() -> None:
    results: dict[str, Any] = {"cpus": os.cpu_count(), "features": FEATURES, "window": WINDOW}
    results["inference_1_row"] = inference_peak()
    peak = results["inference_1_row"]["requests_per_s"]
    results["p4"] = p4 = keeps_up(peak)
    results["p8"] = p8 = thousand_models()
    ratio = p4["events_per_s_batched"] / peak
    scale = p8[f"events_per_s_{MODELS}"] / p8["events_per_s_10"]
    results["summary"] = {
        "core_vs_inference_peak": ratio, "models_rate_vs_10": scale,
        "targets_met": {"core_3x_inference": ratio >= 3, f"{MODELS}_models_90pct": scale >= 0.9,
                        "mb_per_model_0_5": p8[f"mb_per_model_{MODELS}"] <= 0.5,
                        "metrics_under_1s": p8[f"metrics_s_{MODELS}"] < 1.0},
    }
    signals = p4["signals_ms_per_window"]
    lines = ["# Detector scale benchmark", "",
             f"{os.cpu_count()} CPUs; a {FEATURES}-feature regressor (reference 1,000 rows, validation 500), windows "
             f"of {WINDOW}, default settings (engine alibi, every default signal on), embedded adapters.", "",
             "## P4: a detector that keeps up", "",
             f"- inference service, 1-row requests (LSTM, wrk, 16 connections): **{peak:.0f} req/s**",
             f"- detector core, 1-row events as published ({p4['events_per_message']} events a message, one message "
             f"per linger): **{p4['events_per_s_batched']:.0f} events/s = {ratio:.1f}x** the inference peak "
             "(target >= 3x)",
             f"- detector core, one event per message: {p4['events_per_s_single']:.0f} events/s", "",
             "| signal | ms per window | µs per 1-row event | µs per row |", "|---|---|---|---|"]
    for name, ms in signals.items():
        lines.append(f"| {name} | {ms:.2f} | {ms * 1e3 / WINDOW:.1f} | {ms * 1e3 / WINDOW:.1f} |")
    per_event = 1e6 / p4["events_per_s_batched"]
    lines += [f"| everything, per event as published | {per_event * WINDOW / 1e3:.2f} | {per_event:.1f} | "
              f"{per_event:.1f} |", "",
              "The row-by-row sequential test is how one-event messages pay it; a message's events pay it once.", "",
              f"## P8: {MODELS:,} models per detector replica", "",
              "| models | build s | MB per model | 10-row events/s | /metrics s | series | bytes |",
              "|---|---|---|---|---|---|---|"]
    for n in (10, MODELS):
        lines.append(f"| {n:,} | {p8[f'build_s_{n}']:.1f} | {p8[f'mb_per_model_{n}']:.2f} | "
                     f"{p8[f'events_per_s_{n}']:.0f} | {p8[f'metrics_s_{n}']:.3f} | {p8[f'metrics_series_{n}']:,} | "
                     f"{p8[f'metrics_bytes_{n}']:,} |")
    lines += ["", f"- {MODELS:,} models at **{scale:.0%}** of the 10-model rate (target >= 90%); "
                  f"**{p8[f'mb_per_model_{MODELS}']:.2f} MB** per model (target <= 0.5); /metrics rendered in "
                  f"**{p8[f'metrics_s_{MODELS}']:.2f} s** (target < 1 s)", ""]
    write_report("detector_scale", results, "\n".join(lines))


if __name__ == "__main__":
    main()
