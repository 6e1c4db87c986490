"""A reduced demo scenario, end to end through the REST API: detect, retrain, gate, promote, hot-swap."""

from __future__ import annotations

import pytest

from mitiga_standalone.demo import replay

pytestmark = pytest.mark.slow


def test_closed_loop_serves_a_lower_mae_than_the_frozen_model() -> None:
    """The loop's mechanics, with the trigger that retrains on input drift (the series moves for ever)."""
    result = replay(epochs=3, step_months=3, window_rows=60, retrain_epochs=3, start="2004-01-01", end="2005-12-31",
                    trigger_policy="drift")
    rows, summary = result["rows"], result["summary"]
    assert len(rows) == 8 and rows[0]["version"] == "1"
    assert summary["promoted"] >= 1 and rows[-1]["version"] != "1"  # a retrained version is serving
    assert summary["mae_served"] < summary["mae_frozen"]
    promoted = [d for d in result["decisions"] if d["promote"]]
    assert all(d["challenger"] < d["champion"] for d in promoted)
    assert all(d["trigger"] == "informed" and d["episode_id"] for d in result["decisions"])
    assert summary["mitigations"] and all(m["steps"] >= 1 for m in summary["mitigations"])


def test_blind_policy_retrains_on_schedule() -> None:
    result = replay(epochs=2, step_months=3, window_rows=60, retrain_epochs=2, start="2004-01-01", end="2004-12-31",
                    policy="blind", blind_every="quarter")
    decisions = result["decisions"]
    assert decisions and all(d["trigger"] == "blind" for d in decisions)
    assert len(decisions) == len(result["rows"]) - 1  # one per quarter after the first


def test_under_the_performance_policy_input_drift_alone_never_retrains() -> None:
    """2004-2005: the inputs drift all along (the price leaves its 2000-2003 range). The default policy warns of
    it; what retrains, when anything does, is the model's error (here: worse than "tomorrow = today", ``mase``)."""
    from mitiga_detector.levels import METRIC_DRIFT_TYPE, PERFORMANCE_TYPES

    result = replay(epochs=3, step_months=3, window_rows=60, retrain_epochs=3, start="2004-01-01", end="2005-12-31")
    rows, summary = result["rows"], result["summary"]
    assert any("data" in r["types"] for r in rows)
    for row in rows:
        if row["level"] == "critical":
            assert METRIC_DRIFT_TYPE[row["decided_by"]] in PERFORMANCE_TYPES, row
        elif row["decided_by"]:
            assert row["level"] == "warning"
    informed = [d for d in result["decisions"] if d["trigger"] == "informed"]
    assert len(informed) == summary["retrains_requested"]
    assert 0 < summary["mae_persistence"] < summary["mae_frozen"] * 5
