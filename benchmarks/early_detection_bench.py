"""P5, early detection: how many rows after a change each detector needs, and how often it cries wolf.

Synthetic streams of 13 independent N(0, 1) features: 10,000 stable rows, then 3,000 shifted rows (1 sd on one
feature; 0.5 sd on one; 0.5 sd on three; 0.3 sd on all). Each stream is fed, in the same run, to:

- mitiga's detector core with its default settings (the sequential per-feature test, KS windows of 100 rows,
  outliers), as events of ``BATCH`` rows; an alarm is a drift episode opening;
- mitiga with the sequential test off (KS windows only, persistence 2): today's behaviour before it;
- River's ADWIN run on every feature (an alarm when any of them detects a change);
- Evidently's DataDriftPreset on windows of 100 rows.

Delay is in rows after the onset up to the row (or the end of the batch / window) where the detector first alarms.
False alarms are alarms before the onset, per 10,000 stable rows, over all the streams' stable parts.

Goal (issue 11): every scenario detected, a median delay no larger than ADWIN-per-feature's in the same run, at no
more than 1 false alarm per 10,000 stable rows.
"""

from __future__ import annotations

import sys
import tempfile
from typing import Any

import numpy as np
from common import delay_table, write_report
from detector_bench import Scenario, _core, evidently_alarms, feed, score

FEATURES = 13
STABLE, DRIFTED = 10_000, 3_000
BATCH = 5
SCENARIOS = [("1 feature +1.0 sd", 1, 1.0), ("1 feature +0.5 sd", 1, 0.5), ("3 features +0.5 sd", 3, 0.5),
             ("all 13 features +0.3 sd", FEATURES, 0.3)]


def scenario(name: str, shifted: int, delta: float, seed: int) -> Scenario:
    rng = np.random.default_rng(seed)
    reference = rng.normal(size=(1000, FEATURES))  # Evidently picks KS up to 1,000 reference rows
    stream = rng.normal(size=(STABLE + DRIFTED, FEATURES))
    stream[STABLE:, :shifted] += delta
    zeros = np.zeros(len(stream))
    return Scenario(name, reference, stream, STABLE, zeros, zeros, [f"x{i}" for i in range(FEATURES)])


def mitiga_alarms(sc: Scenario, **settings: Any) -> list[int]:
    """Rows at which a drift episode opened (the end of the event that opened it)."""
    with tempfile.TemporaryDirectory() as tmp:
        core = _core(sc, tmp, **settings)
        alarms: list[int] = []
        opened = 0.0
        for start in range(0, len(sc.stream), BATCH):
            total = feed(core, sc.stream[start : start + BATCH], f"e{start}")
            if total > opened:
                alarms.append(min(start + BATCH, len(sc.stream)))
            opened = total
            if alarms and alarms[-1] > sc.onset:
                break  # the first alarm after the onset is all that is scored
        return alarms


def adwin_per_feature_alarms(sc: Scenario) -> list[int]:
    from river import drift

    detectors = [drift.ADWIN() for _ in range(sc.stream.shape[1])]
    alarms = []
    for i, row in enumerate(sc.stream):
        hit = False
        for detector, value in zip(detectors, row, strict=True):
            detector.update(float(value))
            hit = hit or detector.drift_detected
        if hit:
            alarms.append(i + 1)
            if i + 1 > sc.onset:
                break
    return alarms


def main() -> None:
    streams = [scenario(name, shifted, delta, seed) for seed, (name, shifted, delta) in enumerate(SCENARIOS, 21)]
    detectors = {
        "mitiga (default: sequential + KS)": lambda sc: mitiga_alarms(sc),
        "mitiga (KS windows only, persistence 2)": lambda sc: mitiga_alarms(sc, sequential=False),
        "River ADWIN on every feature": adwin_per_feature_alarms,
        "Evidently DataDriftPreset": evidently_alarms,
    }
    results: dict[str, Any] = {"features": FEATURES, "stable_rows": STABLE, "batch_rows": BATCH, "scenarios": {},
                               "median_delay": {}, "false_alarms_per_10k": {}}
    for sc in streams:
        results["scenarios"][sc.name] = {name: score(run(sc), sc.onset) for name, run in detectors.items()}
        print(sc.name, results["scenarios"][sc.name], file=sys.stderr)
    stable = STABLE * len(streams)
    for name in detectors:
        delays = [results["scenarios"][sc.name][name]["delay"] for sc in streams]
        results["median_delay"][name] = float(np.median([d if d is not None else np.inf for d in delays]))
        alarms = sum(results["scenarios"][sc.name][name]["false_alarms"] for sc in streams)
        results["false_alarms_per_10k"][name] = alarms / stable * 10_000
    ours, peer = "mitiga (default: sequential + KS)", "River ADWIN on every feature"
    goal = {"all_detected": all(results["scenarios"][sc.name][ours]["delay"] is not None for sc in streams),
            "median_delay_le_adwin_per_feature": results["median_delay"][ours] <= results["median_delay"][peer],
            "false_alarms_per_10k_le_1": results["false_alarms_per_10k"][ours] <= 1.0}
    results["goal"] = goal
    names = list(detectors)
    lines = ["# Early detection (P5)", "",
             f"{FEATURES} features, {STABLE:,} stable rows then {DRIFTED:,} shifted rows per stream; mitiga is fed "
             f"events of {BATCH} rows. Delay in rows after the onset; 'never' = no alarm.", "",
             *delay_table(results, [sc.name for sc in streams], names, stable, "rows")]
    lines += ["", "Goal: every scenario detected, median delay no larger than River ADWIN on every feature in the "
              "same run, at most 1 false alarm per 10,000 stable rows. Met: "
              + ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in goal.items()) + ".", ""]
    write_report("early_detection", results, "\n".join(lines))


if __name__ == "__main__":
    main()
