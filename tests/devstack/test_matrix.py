"""make matrix (mitiga_devstack.matrix): a cell runs its suites in a pytest process of its own with the environment
that selects its version, counts what passed and names the first failure; a version that cannot be had is listed
with its reason and nothing is run; the table says exactly that."""

from __future__ import annotations

from pathlib import Path

from mitiga_devstack.matrix import Cell, render, run_cell


def test_a_cell_counts_its_results_names_the_first_failure_and_passes_its_environment(tmp_path: Path) -> None:
    suite = tmp_path / "test_cell.py"
    suite.write_text(
        "import os\n\n"
        "def test_sees_the_version():\n    assert os.environ['MATRIX_PART_VERSION'] == '9.9'\n\n"
        "def test_breaks():\n    raise AssertionError('the broker refused the protocol version')\n")
    result = run_cell(Cell("Part", "9.9", (str(suite),), {"MATRIX_PART_VERSION": "9.9"}))
    assert (result.passed, result.failed) == (1, 1)
    assert result.reason.startswith("test_breaks") and "refused the protocol version" in result.reason
    table = render([result, run_cell(Cell("Other", "any", (str(suite),), unavailable="no package here"))], "today")
    assert "| Part | 9.9 |" in table and "**failed** (1 of 2): test_breaks" in table
    assert "| Other | any |" in table and "not run: no package here" in table


def test_an_unavailable_version_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    suite = tmp_path / "test_marks.py"
    suite.write_text(f"def test_marks():\n    open({str(marker)!r}, 'w').close()\n")
    result = run_cell(Cell("Part", "1", (str(suite),), unavailable="not served"))
    assert not marker.exists() and (result.passed, result.failed, result.reason) == (0, 0, "not served")
