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


def test_a_version_is_built_with_the_cells_environment_before_its_suites_and_a_failed_build_runs_nothing(
        tmp_path: Path) -> None:
    built = tmp_path / "built"
    build = tmp_path / "build.sh"
    build.write_text(f'echo "$PART_VERSION" > {built}\n[ "$PART_VERSION" != broken ] || {{ echo "no such module" >&2; exit 1; }}\n')
    suite = tmp_path / "test_built.py"
    suite.write_text(f"def test_sees_the_build():\n    assert open({str(built)!r}).read().strip() == '2.0'\n")
    ok = run_cell(Cell("Part", "2.0", (str(suite),), {"PART_VERSION": "2.0"}, build=(str(build),)))
    assert (ok.passed, ok.failed) == (1, 0)
    built.unlink()
    broken = run_cell(Cell("Part", "broken", (str(suite),), {"PART_VERSION": "broken"}, build=(str(build),)))
    assert (broken.passed, broken.failed) == (0, 1)
    assert broken.reason == "build.sh failed: no such module"


def test_how_a_version_was_built_is_stated_beside_it(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import mitiga_devstack.matrix as matrix

    monkeypatch.setattr(matrix, "CACHE", tmp_path)
    build = tmp_path / "build.sh"
    build.write_text(f"mkdir -p {tmp_path}/tools && echo 'k8s.io/kube-proxy v0.31.11' > {tmp_path}/tools/subs.txt\n")
    suite = tmp_path / "test_ok.py"
    suite.write_text("def test_ok():\n    pass\n")
    result = run_cell(Cell("Kubernetes", "1.31.13", (str(suite),), build=(str(build),), build_note="tools/subs.txt"))
    assert result.note == "k8s.io/kube-proxy v0.31.11"
    assert "| Kubernetes | 1.31.13 (built with staging modules" in render([result], "today")
    assert "k8s.io/kube-proxy v0.31.11)" in render([result], "today")
