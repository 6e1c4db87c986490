"""The tier check (tests/tiers.py) on small suites of its own: an unmarked test that takes far too long fails the
run, one a little over the limit is only reported, a marked one is neither, a session fixture's setup is not counted, and each tier's time is reported."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

SUITE = """
import time
import pytest

@pytest.fixture(scope="session")
def broker():
    time.sleep(1.0)  # a shared server starting: paid once by the run
    return "broker"

@pytest.fixture(scope="module")
def model_server():
    time.sleep(1.0)  # a module's own server: this module's cost
    return "server"

def test_quick(broker):
    assert broker == "broker"

{extra}
"""


@pytest.fixture
def limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MITIGA_UNMARKED_LIMIT_S", "0.3")
    monkeypatch.setenv("MITIGA_UNMARKED_FAIL_S", "0.6")


def run(pytester: pytest.Pytester, extra: str) -> pytest.RunResult:
    pytester.makepyfile(test_suite=SUITE.format(extra=extra))
    return pytester.runpytest_inprocess("-p", "tests.tiers", "-p", "no:cacheprovider")


@pytest.mark.usefixtures("limit")
def test_an_unmarked_test_over_the_limit_fails_the_run(pytester: pytest.Pytester) -> None:
    result = run(pytester, "def test_sleeps():\n    time.sleep(0.8)\n")
    result.assert_outcomes(passed=2)
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*unmarked tests over the limit*", "*s  test_suite.py::test_sleeps  (fails the run)"])
    assert "test_quick" not in result.stdout.str().split("unmarked tests over the limit")[1]
    assert "test_suite.py::test_sleeps  (fails the run)" in (pytester.path / "out" / "tiers.txt").read_text()


@pytest.mark.usefixtures("limit")
def test_an_unmarked_test_a_little_over_the_limit_is_reported_not_failed(pytester: pytest.Pytester,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MITIGA_UNMARKED_FAIL_S", "5")
    result = run(pytester, "def test_sleeps():\n    time.sleep(0.8)\n")
    result.assert_outcomes(passed=2)
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*unmarked tests over the limit*", "*s  test_suite.py::test_sleeps"])
    assert "fails the run)" not in result.stdout.str().split("unmarked tests over the limit")[1]
    tiers = (pytester.path / "out" / "tiers.txt").read_text()
    assert "unmarked over 0.3 s:" in tiers and "test_suite.py::test_sleeps" in tiers


@pytest.mark.usefixtures("limit")
def test_a_module_fixture_counts_against_its_first_test(pytester: pytest.Pytester) -> None:
    result = run(pytester, "def test_served(model_server):\n    assert model_server\n")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*s  test_suite.py::test_served  (fails the run)"])


@pytest.mark.usefixtures("limit")
def test_a_marked_test_and_a_session_fixture_are_not_counted(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nmarkers =\n    slow: trains\n")
    result = run(pytester, "@pytest.mark.slow\ndef test_sleeps():\n    time.sleep(0.8)\n")
    result.assert_outcomes(passed=2)
    assert result.ret == 0
    assert "unmarked tests over the limit" not in result.stdout.str()
    result.stdout.fnmatch_lines(["*time per tier*", "fast*1 tests*", "slow*1 tests*"])
    assert (pytester.path / "out" / "tiers.txt").read_text().splitlines()[0].startswith("fast")


@pytest.mark.slow  # two pytest-xdist workers start in their own processes
def test_the_suites_that_share_the_host_run_on_one_xdist_worker(pytester: pytest.Pytester,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """tests/node and tests/images share the real node: under `-n 2` every one of their tests runs on the same
    worker (pytest-xdist's own `xdist_group` marks are ignored under pytest 9), and any other module's tests on one."""
    for suite in ("node", "images", "other"):  # folders, not packages: `tests` stays the repository's
        (pytester.path / "tests" / suite).mkdir(parents=True)
        (pytester.path / "tests" / suite / f"test_{suite}.py").write_text("import os, pathlib, time\n" + "".join(
            f"def test_{i}():\n    time.sleep(0.3)\n"
            f"    pathlib.Path('{suite}-{i}.worker').write_text(os.environ['PYTEST_XDIST_WORKER'])\n"
            for i in range(4)))
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parents[2]))
    result = pytester.runpytest_subprocess("-p", "tests.tiers", "-p", "no:cacheprovider", "-n", "2", "tests")
    result.assert_outcomes(passed=12)
    workers = {suite: {(pytester.path / f"{suite}-{i}.worker").read_text() for i in range(4)}
               for suite in ("node", "images", "other")}
    assert len(workers["node"] | workers["images"]) == 1, workers
    assert len(workers["other"]) == 1, workers  # a module stays on one worker: its fixtures start once
