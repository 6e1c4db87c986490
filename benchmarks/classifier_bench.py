"""P9, a classifier on real data with real drift: the hourly CO level (low / moderate / high) of the UCI Air Quality
data, trained on March-August 2004, served from September 2004 to March 2005 through the standalone stack with its
labels a week at a time (``mitiga_standalone.classifier_replay``).

Arms on the same stream: the frozen first model, blind retraining every month, mitiga's informed retraining with
the default ``performance`` policy, and a conservative informed setting (the realised ratios alone, four weeks of
labels, held for three windows). Accuracy and log loss per week, retrains, and the accuracy CBPE estimated before the
labels against the realised one.

Goals (issue 25): informed keeps at least 95% of monthly blind's accuracy gain over the frozen model with at most a
third of its retrains; the estimate's error against the realised accuracy at most 0.03 per week while the inputs
are stable.
"""

from __future__ import annotations

import sys
import time

from common import RESULTS, write_report


def main() -> None:
    from mitiga_core.quiet import quiet_frameworks

    quiet_frameworks()
    from mitiga_standalone.classifier_replay import CONSERVATIVE, compare, plot, replay

    started = time.monotonic()
    runs = {"informed": replay(policy="informed"), "conservative": replay(policy="informed", **CONSERVATIVE),
            "blind": replay(policy="blind")}
    result = compare(runs)
    result["seconds"] = time.monotonic() - started
    names = {"frozen": "frozen (trained March-August 2004)", "blind": "blind, every month",
             "informed": "mitiga, default policy (performance)", "conservative": "mitiga, conservative setting"}
    lines = ["# A classifier on real drift (P9)", "",
             "UCI Air Quality, the hourly CO level (low < 1.5 mg/m³ <= moderate < 3 <= high) from the sensors and "
             "the weather; trained on March-August 2004, served September 2004 - March 2005 through the standalone "
             "stack, a day per request, the true classes (by name) a week at a time.", "",
             "| arm | accuracy | log loss | retrains (promoted) | gain over frozen |", "|---|---|---|---|---|"]
    for name, arm in result["arms"].items():
        gain = result["gain"].get(name)
        lines.append(f"| {names[name]} | {arm['accuracy']:.3f} | {arm['log_loss']:.3f} | {arm['retrains']} "
                     f"({arm['promoted']}) | {'' if gain is None else f'{gain:+.3f}'} |")
    estimate = result["estimate_mae_stable"]
    goal = result["goal"]
    share = result["gain"]["informed"] / result["gain"]["blind"] if result["gain"]["blind"] > 0 else float("nan")
    lines += ["", f"Goal: mitiga (default policy) keeps at least 95% of monthly blind's gain (measured {share:.0%}) "
              f"with at most a third of its retrains (measured {result['arms']['informed']['retrains']} of "
              f"{result['arms']['blind']['retrains']}); CBPE's weekly error against the realised accuracy while the "
              f"inputs are stable at most 0.03 (measured {estimate:.3f})." if estimate is not None else "",
              "Met: " + ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in goal.items()) + ".", "",
              "What the weeks show: the winter's weeks differ from one another more than the models do (every arm's "
              "weekly accuracy swings between about 0.5 and 0.9), so the default policy, which compares the realised "
              "error rate and log loss with the served model's own validation, finds a hard week critical and "
              "retrains on it; each retrain helps, which is why it keeps blind's gain. The conservative setting "
              "halves the retrains for part of the gain. CBPE reads only the model's confidence: it tracks the "
              "realised accuracy while the world is as trained, but this winter is mostly a change of the sensors' "
              "response (concept drift), which confidence cannot see, so its estimate stays high while the labels "
              "say otherwise.", "",
              "![accuracy per week, and CBPE's estimate](classifier.png)", ""]
    plot(result, RESULTS / "classifier.png")
    for run in result["runs"].values():
        run.pop("decisions", None)
    print("\n".join(lines), file=sys.stderr)
    write_report("classifier", result, "\n".join(lines))


if __name__ == "__main__":
    main()
