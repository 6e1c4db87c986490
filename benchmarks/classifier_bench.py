"""P9, a classifier on real data with real drift: the hourly CO level (low / moderate / high) of the UCI Air Quality
data, trained on March-August 2004, served from September 2004 to March 2005 through the standalone stack with its
labels a week at a time (``mitiga_standalone.classifier_replay``).

Arms on the same stream: the frozen first model, blind retraining every month, and mitiga's informed retraining
with the default ``performance`` policy; each retraining arm once with full-history retraining (the bench's setting)
and once with a 1,500-row sliding window. Accuracy and log loss per week, retrains, and the accuracy CBPE estimated
before the labels against the realised one.

Goals (issue 25): informed keeps at least 95% of monthly blind's accuracy gain over the frozen model with at most a
third of its retrains; the estimate's error against the realised accuracy at most 0.03 per week while the inputs
are stable.
"""

from __future__ import annotations

import sys
import time

from common import RESULTS, write_report

NOTES = [
    "How: a ratio signal reports the ratio the rows behind it support (the detector's `ratio_confidence`, 0.9): the "
    "recent error's lower bound over the served model's held-out error's upper bound; and the error-stream (ADWIN) "
    "alarm counts only when the recent rows are measurably worse than the model's own held-out error. Before them "
    "(stop 33), the default policy retrained 10 times on this stream: a retrained model's reference is its 100- to "
    "300-row gate holdout, an easy holdout made every ordinary week read 1.5x worse, and a single hard week (weekly "
    "accuracy swings between about 0.5 and 0.9 for every arm) raised the per-row log loss enough for ADWIN.",
    "CBPE reads only the model's confidence: it follows the realised accuracy while the inputs are as trained (a "
    "week's realised accuracy over about 150 rows has a sampling error near 0.03 itself), but this winter is mostly "
    "a change in the sensors' response (concept drift), which confidence cannot see: the estimate does not fall "
    "before the labels do.",
]


def main() -> None:
    from mitiga_core.quiet import quiet_frameworks

    quiet_frameworks()
    from mitiga_standalone.classifier_replay import compare, plot, replay

    started = time.monotonic()
    runs = {"informed": replay(policy="informed"), "blind": replay(policy="blind"),
            "informed_sliding": replay(policy="informed", strategy="sliding_window"),
            "blind_sliding": replay(policy="blind", strategy="sliding_window")}
    result = compare(runs)
    result["seconds"] = time.monotonic() - started
    names = {"frozen": "frozen (trained March-August 2004)", "blind": "blind, every month (full history)",
             "informed": "mitiga, default policy (full history)",
             "blind_sliding": "blind, every month (sliding window)",
             "informed_sliding": "mitiga, default policy (sliding window)"}
    lines = ["# A classifier on real drift (P9)", "",
             "UCI Air Quality, the hourly CO level (low < 1.5 mg/m³ <= moderate < 3 <= high) from the sensors and "
             "the weather; trained on March-August 2004, served September 2004 - March 2005 through the standalone "
             "stack, a day per request, the true classes (by name) a week at a time. Every retrain is warm-started "
             "and gated on 100 recent rows; full history (the bench's setting) or the newest 1,500 rows.", "",
             "| arm | accuracy | log loss | retrains (promoted) | gain over frozen |", "|---|---|---|---|---|"]
    for name, arm in result["arms"].items():
        gain = result["gain"].get(name)
        lines.append(f"| {names[name]} | {arm['accuracy']:.3f} | {arm['log_loss']:.3f} | {arm['retrains']} "
                     f"({arm['promoted']}) | {'' if gain is None else f'{gain:+.3f}'} |")
    estimate = result["estimate_mae_stable"]
    goal = result["goal"]
    share = result["gain"]["informed"] / result["gain"]["blind"] if result["gain"]["blind"] > 0 else float("nan")
    sliding = result["other_settings"]["sliding"]
    lines += ["", f"Goal: mitiga (default policy) keeps at least 95% of monthly blind's gain (measured {share:.0%}) "
              f"with at most a third of its retrains (measured {result['arms']['informed']['retrains']} of "
              f"{result['arms']['blind']['retrains']}); CBPE's weekly error against the realised accuracy while the "
              f"inputs are as trained at most 0.03 (measured {estimate:.3f})." if estimate is not None else "",
              "Met: " + ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in goal.items()) + ".",
              f"With sliding-window retraining instead: {sliding['share_of_blind_gain']:.0%} of blind's gain with "
              f"{sliding['retrains']} retrains against {sliding['blind_retrains']}.", "",
              *NOTES, "", "![accuracy per week, and CBPE's estimate](classifier.png)", ""]
    plot(result, RESULTS / "classifier.png")
    for run in result["runs"].values():
        run.pop("decisions", None)
    print("\n".join(lines), file=sys.stderr)
    write_report("classifier", result, "\n".join(lines))


if __name__ == "__main__":
    main()
