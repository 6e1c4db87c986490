"""P6, the research experiment as the referee of the retraining policy.

The Amazon LSTM is trained on 2000-2003 and serves 2004-2017 through the standalone stack in 3-month steps, one
step ahead, under: the frozen model; blind retraining every quarter; mitiga's informed retraining under the default
trigger policy (``performance``) and under the old one (``drift``, retrain on input drift). The naive forecast
"tomorrow = today" is reported beside them. MAE over the same days, in USD.

Goal (issue 11): informed MAE at most 1.1x the quarterly-blind MAE, with at most a third of its retrains.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from common import RESULTS, write_report

POLICIES = os.environ.get("BENCH_POLICIES", "performance,drift").split(",")


def main() -> None:
    from mitiga_standalone.experiments import plot_production, production

    started = time.monotonic()
    runs = {policy: production(step_months=3, blind_every="quarter", trigger_policy=policy) for policy in POLICIES}
    first = runs[POLICIES[0]]["summary"]
    rows: dict[str, dict[str, Any]] = {
        "frozen (trained 2000-2003)": first["frozen"],
        "naive: tomorrow = today": first["persistence"],
        "blind, every quarter": first["blind"],
    }
    for policy, run in runs.items():
        rows[f"mitiga informed, policy {policy}"] = run["summary"]["informed"]
    blind = first["blind"]
    informed = first["informed"]
    goal = {"informed_mae_le_1.1x_blind": informed["mae"] <= 1.1 * blind["mae"],
            "informed_retrains_le_third_of_blind": informed["retrains"] * 3 <= blind["retrains"]}
    results = {"rows": rows, "goal": goal, "policy": POLICIES[0], "seconds": time.monotonic() - started}
    lines = ["# Retraining policy on the research experiment (P6)", "",
             "Amazon Open, LSTM trained on 2000-2003, 2004-2017 served one step ahead in 3-month steps through the "
             "standalone stack (REST, detector, retrainer jobs, gate). MAE over the same days, USD.", "",
             "| policy | MAE 2004-2017 | retrains |", "|---|---|---|"]
    for name, row in rows.items():
        lines.append(f"| {name} | {row['mae']:.2f} | {row['retrains']} |")
    ratio = informed["mae"] / blind["mae"]
    lines += ["", f"Goal: informed (policy {POLICIES[0]}) MAE at most 1.1x quarterly blind (measured {ratio:.2f}x), "
              f"with at most a third of its retrains (measured {informed['retrains']} of {blind['retrains']}). Met: "
              + ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in goal.items()) + ".", ""]
    print("\n".join(lines), file=sys.stderr)
    plot_production(runs[POLICIES[0]], RESULTS / "policy.png")
    lines += ["![MAE per quarter](policy.png)", ""]
    write_report("policy", results, "\n".join(lines))


if __name__ == "__main__":
    main()
