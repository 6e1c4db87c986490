"""Drift detector benchmark: sustained events per second, and detection delay and false alarms on streams with
known change points, against Evidently's default data-drift preset and River's ADWIN on the error stream.

Every detector sees the same non-overlapping windows of ``WINDOW`` rows. Delay is counted in samples after the
onset, to the end of the window where the detector first alarms after it ("never" if it does not). False alarms are
alarms before the onset, per 10,000 stable samples.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from common import delay_table, write_report

WINDOW = int(os.environ.get("BENCH_WINDOW", "100"))


@dataclass
class Scenario:
    name: str
    reference: np.ndarray
    stream: np.ndarray
    onset: int
    truth: np.ndarray
    prediction: np.ndarray
    features: list[str]


def _linear(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    design = np.column_stack([x, np.ones(len(x))])
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    return coef


def _apply(coef: np.ndarray, x: np.ndarray) -> np.ndarray:
    return np.column_stack([x, np.ones(len(x))]) @ coef


def synthetic(name: str, shifted: int, delta: float, stable: int, drifted: int, seed: int) -> Scenario:
    rng = np.random.default_rng(seed)
    n_features = 10

    def truth(x: np.ndarray) -> np.ndarray:
        return x.sum(axis=1) + 0.3 * (x**2).sum(axis=1) + rng.normal(scale=0.3, size=len(x))

    reference = rng.normal(size=(1000, n_features))
    coef = _linear(reference, truth(reference))
    stream = rng.normal(size=(stable + drifted, n_features))
    stream[stable:, :shifted] += delta
    y = truth(stream)
    return Scenario(name, reference, stream, stable, y, _apply(coef, stream), [f"x{i}" for i in range(n_features)])


def _split(x: np.ndarray, y: np.ndarray, seed: int) -> tuple[np.ndarray, ...]:
    """Reference and stable rows drawn at random from the same period, so the stable part is truly stable."""
    order = np.random.default_rng(seed).permutation(len(x))
    ref, stable = order[: len(x) * 2 // 3], order[len(x) * 2 // 3 :]
    return x[ref], y[ref], x[stable], y[stable]


def air_quality() -> Scenario:
    from mitiga_research.datasets import AIR_QUALITY_FEATURES, AIR_QUALITY_TARGET, load_air_quality

    frame = load_air_quality()[[*AIR_QUALITY_FEATURES, AIR_QUALITY_TARGET]].dropna()
    months = frame.loc["2004-03-01":"2004-05-31"]
    late = frame.loc["2004-11-01":"2005-02-28"]
    x_ref, y_ref, x_stable, y_stable = _split(months[AIR_QUALITY_FEATURES].to_numpy(),
                                              months[AIR_QUALITY_TARGET].to_numpy(), seed=5)
    coef = _linear(x_ref, y_ref)
    x = np.concatenate([x_stable, late[AIR_QUALITY_FEATURES].to_numpy()[: 2 * len(x_stable)]])
    y = np.concatenate([y_stable, late[AIR_QUALITY_TARGET].to_numpy()[: 2 * len(x_stable)]])
    return Scenario("air quality: Mar-May 2004, then Nov 2004 on", x_ref, x, len(x_stable), y, _apply(coef, x),
                    list(AIR_QUALITY_FEATURES))


def stock() -> Scenario:
    from mitiga_research.datasets import load_prices, sliding_windows

    opens = load_prices("amzn")["open"]
    lags = 5

    def rows(part: pd.Series) -> tuple[np.ndarray, np.ndarray]:
        x, y = sliding_windows(part.to_numpy(np.float32), lags)
        return x.astype(np.float64), y.astype(np.float64)

    x_ref, y_ref, x_stable, y_stable = _split(*rows(opens.loc["2000-01-01":"2003-12-31"]), seed=6)
    x_late, y_late = rows(opens.loc["2008-01-01":"2011-12-31"])
    coef = _linear(x_ref, y_ref)
    x = np.concatenate([x_stable, x_late])
    # the tested input is the series' newest value, as the detector does for forecast models
    return Scenario("amzn open: 2000-2003, then 2008 on", x_ref[:, -1:], x[:, -1:], len(x_stable),
                    np.concatenate([y_stable, y_late]), _apply(coef, x), ["open"])


def _core(sc: Scenario, tmp: str, **settings: Any) -> Any:
    """A detector core on embedded adapters, watching a model whose reference is the scenario's."""
    from mitiga_core.bundle import ModelManifest
    from mitiga_core.bus import InMemoryBus
    from mitiga_core.publisher import EventPublisher
    from mitiga_core.state import InMemoryStateStore
    from mitiga_core.store import FilesystemModelStore
    from mitiga_detector.core import DetectorCore
    from mitiga_detector.metrics import DetectorMetrics
    from mitiga_detector.settings import DetectorSettings

    store = FilesystemModelStore(Path(tmp))
    manifest = ModelManifest(name="m", task="regression", features=sc.features)

    def populate(folder: Path, version: str) -> None:
        np.save(folder / "reference.npy", sc.reference.astype(np.float32))
        (folder / "manifest.json").write_text(manifest.model_copy(update={"version": version}).model_dump_json())

    store.write_version("m", populate)
    metrics = DetectorMetrics()
    publisher = EventPublisher(InMemoryBus(), source="bench", maxsize=100_000, registry=metrics.registry)
    return DetectorCore(DetectorSettings(trigger="off", **settings), store=store, state=InMemoryStateStore(),
                        publisher=publisher, metrics=metrics, launcher=None)


def feed(core: Any, x: np.ndarray, event_id: str) -> float:
    """Hand the core one inference event of rows ``x`` (model "m"); returns the drift episodes opened so far."""
    from mitiga_core.events import encode
    from mitiga_core.pb.mitiga.v1 import events_pb2 as pb

    rows = x.astype(np.float32)
    event = pb.InferenceEvent(event_id=event_id, model_name="m", model_version="1",
                              inputs=pb.Matrix(shape=list(rows.shape), data=rows.reshape(-1).tolist()),
                              outputs=pb.Matrix(shape=[len(rows), 1], data=[0.0] * len(rows)))
    event.time.GetCurrentTime()
    core.handle(encode(event, source="bench"))
    return sum(core.metrics.registry.get_sample_value("mitiga_drift_episodes_total", {"model": "m", "level": lv})
               or 0.0 for lv in ("warning", "critical"))


def mitiga_alarms(sc: Scenario, persistence: int) -> list[int]:
    """Window ends where the detector opened a drift episode, and the first window end after the onset where it is
    in an alarm state (an episode still open from a false alarm counts as alarming there)."""
    with tempfile.TemporaryDirectory() as tmp:
        core = _core(sc, tmp, window_size=WINDOW, persistence=persistence)
        alarms: list[int] = []
        opened = 0.0
        for start in range(0, len(sc.stream) - WINDOW + 1, WINDOW):
            total = feed(core, sc.stream[start : start + WINDOW], f"e{start}")
            end = start + WINDOW
            alarming = core.state_of("m")["level"] != "none"
            if total > opened or (alarming and end > sc.onset and not any(a > sc.onset for a in alarms)):
                alarms.append(end)
            opened = total
        return alarms


def evidently_alarms(sc: Scenario) -> list[int]:
    from evidently import Report
    from evidently.presets import DataDriftPreset

    reference = pd.DataFrame(sc.reference, columns=sc.features)
    report = Report([DataDriftPreset()])
    alarms = []
    for start in range(0, len(sc.stream) - WINDOW + 1, WINDOW):
        current = pd.DataFrame(sc.stream[start : start + WINDOW], columns=sc.features)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            values = report.run(current_data=current, reference_data=reference).dict()["metrics"]
        drifted = next(m for m in values if m["metric_name"].startswith("DriftedColumnsCount"))
        if drifted["value"]["share"] >= drifted["config"]["drift_share"]:
            alarms.append(start + WINDOW)
    return alarms


def adwin_alarms(sc: Scenario) -> list[int]:
    from river import drift

    detector = drift.ADWIN()
    alarms = []
    for i, error in enumerate(np.abs(sc.truth - sc.prediction)):
        detector.update(float(error))
        if detector.drift_detected:
            alarms.append(i + 1)
    return alarms


def score(alarms: list[int], onset: int) -> dict[str, Any]:
    after = [a - onset for a in alarms if a > onset]
    before = [a for a in alarms if a <= onset]
    return {"delay": after[0] if after else None, "false_alarms": len(before)}


def throughput() -> dict[str, float]:
    sc = synthetic("throughput", 0, 0.0, 20_000, 0, seed=9)
    out = {}
    for rows in (1, 10):
        start = time.perf_counter()
        stream = Scenario(sc.name, sc.reference, sc.stream[: 10_000 * rows // 10], 0, sc.truth, sc.prediction,
                          sc.features)
        n = _feed_events(stream, rows)
        out[f"events_per_s_{rows}_rows"] = n / (time.perf_counter() - start)
    return out


def _feed_events(sc: Scenario, rows: int) -> int:
    from mitiga_core.events import encode
    from mitiga_core.pb.mitiga.v1 import events_pb2 as pb

    with tempfile.TemporaryDirectory() as tmp:
        core = _core(sc, tmp)
        envelopes = []
        for i, start in enumerate(range(0, len(sc.stream) - rows + 1, rows)):
            x = sc.stream[start : start + rows].astype(np.float32)
            event = pb.InferenceEvent(event_id=f"e{i}", request_id=f"r{i}", model_name="m", model_version="1",
                                      inputs=pb.Matrix(shape=list(x.shape), data=x.reshape(-1).tolist()),
                                      outputs=pb.Matrix(shape=[rows, 1], data=[0.0] * rows))
            event.time.GetCurrentTime()
            envelopes.append(encode(event, source="bench"))
        for i, envelope in enumerate(envelopes, 1):
            core.handle(envelope)
            if i % 500 == 0:  # as the consumer does after each batch of up to 500 records
                core.checkpoint()
        core.checkpoint()
        return len(envelopes)


def main() -> None:
    scenarios = [
        synthetic("synthetic: 1 of 10 features +1.0 sd", 1, 1.0, 3000, 3000, seed=1),
        synthetic("synthetic: 3 of 10 features +0.75 sd", 3, 0.75, 3000, 3000, seed=2),
        synthetic("synthetic: all 10 features +0.5 sd", 10, 0.5, 3000, 3000, seed=3),
        air_quality(),
        stock(),
    ]
    stationary = synthetic("synthetic: stationary, 10k samples", 0, 0.0, 10_000, 0, seed=4)
    detectors = {
        "mitiga (default signals, persistence 2)": lambda sc: mitiga_alarms(sc, 2),
        "mitiga (default signals, persistence 1)": lambda sc: mitiga_alarms(sc, 1),
        "Evidently DataDriftPreset": evidently_alarms,
        "River ADWIN on |error|": adwin_alarms,
    }
    results: dict[str, Any] = {"window": WINDOW, "scenarios": {}, "false_alarms_per_10k": {}, "median_delay": {}}
    for sc in scenarios:
        results["scenarios"][sc.name] = {name: score(run(sc), sc.onset) for name, run in detectors.items()}
        print(sc.name, results["scenarios"][sc.name], file=sys.stderr)
    stable_samples = stationary.onset + sum(sc.onset for sc in scenarios)
    for name, run in detectors.items():
        alarms = len(run(stationary)) + sum(results["scenarios"][sc.name][name]["false_alarms"] for sc in scenarios)
        results["false_alarms_per_10k"][name] = alarms / stable_samples * 10_000
        delays = [results["scenarios"][sc.name][name]["delay"] for sc in scenarios]
        results["median_delay"][name] = float(np.median([d if d is not None else np.inf for d in delays]))
    results["throughput"] = throughput()
    names = list(detectors)
    lines = ["# Drift detector benchmark", "",
             f"Windows of {WINDOW} rows; delay in samples after the onset (window end); 'never' = no alarm.", "",
             *delay_table(results, [sc.name for sc in scenarios], names, stable_samples, "samples")]
    tp = results["throughput"]
    lines += ["", "Sustained throughput of the detector core (default signals: Alibi KS, the sequential test and the "
                  "outlier forest; windows of 100, 10 features): "
                  f"{tp['events_per_s_1_rows']:.0f} events/s of 1 row, {tp['events_per_s_10_rows']:.0f} events/s "
                  f"of 10 rows.", "",
              "Evidently is the `evidently` 0.7.23 package itself (its DataDriftPreset defaults: per-column KS at "
              "p < 0.05, dataset drift when at least half the columns drift).", ""]
    write_report("detector", results, "\n".join(lines))


if __name__ == "__main__":
    main()
