"""The shipped classifier example, shortened: the CO-level classifier served through the standalone stack, a day per
request and its labels a week later, answers as the frozen model while it is the champion, its CBPE estimate follows
the realised accuracy while the inputs are as trained, and the CLI writes the comparison and its figure."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

pytestmark = pytest.mark.slow


def test_the_replay_serves_the_classifier_and_cbpe_follows_the_realised_accuracy() -> None:
    from mitiga_standalone.classifier_replay import compare, replay

    informed = replay(policy="informed", end="2004-10-06", epochs=5, retrain_epochs=2)
    rows = informed["rows"]
    assert [r["week"] for r in rows] == ["2004-09-01", "2004-09-08", "2004-09-15", "2004-09-22", "2004-09-29"]
    first = [r for r in rows if r["version"] == "1"]
    assert first and all(r["accuracy"] == pytest.approx(r["accuracy_frozen"], abs=1e-6) for r in first)
    estimated = [(r["estimated_accuracy"], r["accuracy"]) for r in first if r["estimated_accuracy"] is not None]
    assert estimated and np.mean([abs(e - a) for e, a in estimated]) < 0.06
    result = compare({"informed": informed, "blind": informed})
    assert set(result["goal"]) == {"informed_keeps_95pct_of_blinds_gain", "informed_retrains_le_third_of_blind",
                                   "estimate_mae_le_0.03_while_stable"}


def test_the_cli_writes_the_comparison_and_its_figure(tmp_path: Path) -> None:
    from mitiga_cli.__main__ import app

    done = CliRunner().invoke(app, ["experiment", "classifier", "--end", "2004-09-15", "--epochs", "3",
                                    "--retrain-epochs", "1", "--out", str(tmp_path)])
    assert done.exit_code == 0, done.output
    assert (tmp_path / "classifier.png").stat().st_size > 10_000 and (tmp_path / "classifier.json").exists()
    assert "frozen" in done.output and "blind" in done.output
