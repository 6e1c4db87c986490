"""The test tiers, and the check that keeps their markers honest.

Every test belongs to one tier, read from its markers (``make check`` runs the first; ``make test`` all four):

- ``fast``: no marker; starts no server, serves no real model, builds no image, trains no more than a few epochs;
- ``slow``: trains or serves real models in process;
- ``integration``: starts real servers (Kafka, Redis, Prometheus, Alertmanager, a control plane, processes);
- ``node``: builds or runs the service images, or needs the real node (containerd, kubelet).

After the run this plugin prints the wall time each tier took, and lists the tests of the ``fast`` tier that took
longer than ``MITIGA_UNMARKED_LIMIT_S`` seconds (5 by default) in their setup and call: such a test should carry
the marker of what it does, or get faster. The run fails only for a test over ``MITIGA_UNMARKED_FAIL_S`` (four times
the limit by default): a test that starts a server or trains a model, not one that ran a second long on a slower
machine beside a worker that trains (a CI run once failed so with all 598 tests passed).
The outliers also go to ``out/tiers.txt``, which ``make test`` prints last. A session-scoped fixture's setup (the
trained reference store, a broker) is shared by the whole run, so it is not counted against the test that happens to
come first; a module's fixture (a model server for the module's tests) is. Reports carry their markers as keywords
and the shared time as a user property, so this works under pytest-xdist as well.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator

TIERS = ("fast", "slow", "integration", "node")
SHARED = "shared_fixture_s"
GROUPS = {"node": "host", "images": "host", "k8s": "control-plane", "security": "control-plane"}
"""Suites that share one thing per machine run on one pytest-xdist worker: the real node owns containerd, the CNI
bridge and iptables, and the images' tests share podman's storage with it; the chart's tests and the attacks on it
share one control plane. Every other module runs whole on one worker: its module fixtures (a model server, a stack)
start once, and its tests keep their order (the fuzz suite's last test counts the cases the others ran). Not
``xdist_group`` marks: pytest-xdist 3.8's ``--dist loadgroup`` renames ``item._nodeid``, which pytest 9 no longer
reads, so its groups are silently ignored."""


def scope_of(nodeid: str) -> str:
    """The unit pytest-xdist hands to one worker: a shared suite's name, otherwise the test's module."""
    parts = nodeid.split("/")
    if len(parts) > 2 and parts[0] == "tests" and parts[1] in GROUPS:
        return GROUPS[parts[1]]
    return nodeid.split("::")[0]


def tier_of(keywords: object) -> str:
    """The tier of a test from its keywords (``item.keywords`` or ``report.keywords``: marker names are keys)."""
    names = set(keywords)  # type: ignore[call-overload]
    if "node" in names:
        return "node"
    if "integration" in names:
        return "integration"
    if "slow" in names:
        return "slow"
    return "fast"


def unmarked_limit_s() -> float:
    return float(os.environ.get("MITIGA_UNMARKED_LIMIT_S", "5"))


def unmarked_fail_s(limit_s: float) -> float:
    return float(os.environ.get("MITIGA_UNMARKED_FAIL_S", str(4 * limit_s)))


class SharedFixtureTimer:
    """Times the setup of session-scoped fixtures (the outermost, when one needs another) and records it on the
    test whose setup triggered it."""

    def __init__(self) -> None:
        self.item: pytest.Item | None = None
        self.depth = 0

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        self.item = item

    @pytest.hookimpl(hookwrapper=True)
    def pytest_fixture_setup(self, fixturedef: pytest.FixtureDef[object]) -> Iterator[None]:
        if fixturedef.scope != "session":
            yield
            return
        start, self.depth = time.perf_counter(), self.depth + 1
        try:
            yield
        finally:
            self.depth -= 1
            if self.depth == 0 and self.item is not None:
                self.item.user_properties.append((SHARED, time.perf_counter() - start))


class TierClock:
    """Per tier: how many tests, and the seconds their setup, call and teardown took; the fast tier's outliers."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.tests: dict[str, set[str]] = defaultdict(set)
        self.own: dict[str, float] = defaultdict(float)
        self.too_slow: dict[str, float] = {}
        self.limit_s = unmarked_limit_s()
        self.fail_s = unmarked_fail_s(self.limit_s)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        tier = tier_of(report.keywords)
        self.seconds[tier] += report.duration
        self.tests[tier].add(report.nodeid)
        if tier != "fast" or report.when == "teardown":
            return
        shared = sum(float(str(v)) for k, v in report.user_properties if k == SHARED) if report.when == "setup" else 0.0
        self.own[report.nodeid] += max(0.0, report.duration - shared)
        if report.when == "call" and self.own[report.nodeid] > self.limit_s:
            self.too_slow[report.nodeid] = self.own[report.nodeid]

    @property
    def failing(self) -> dict[str, float]:
        """The unmarked tests that fail the run."""
        return {nodeid: s for nodeid, s in self.too_slow.items() if s > self.fail_s}

    def lines(self) -> list[str]:
        tiers = [f"{tier:<12} {len(self.tests[tier]):>4} tests {self.seconds[tier]:>8.1f} s"
                 for tier in TIERS if self.tests[tier]]
        return tiers + [f"unmarked over {self.limit_s:g} s: {seconds:.1f} s  {nodeid}"
                        f"{'  (fails the run)' if seconds > self.fail_s else ''}"
                        for nodeid, seconds in sorted(self.too_slow.items(), key=lambda kv: -kv[1])]

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        terminalreporter.section("time per tier (the tests' setup, call and teardown, summed over the workers)")
        for line in self.lines():
            terminalreporter.write_line(line)
        out = terminalreporter.config.rootpath / "out"
        out.mkdir(exist_ok=True)
        (out / "tiers.txt").write_text("".join(f"{line}\n" for line in self.lines()))
        if self.too_slow:
            terminalreporter.section("unmarked tests over the limit", **({"red": True} if self.failing else {"yellow": True}))
            terminalreporter.write_line(
                f"These tests carry no tier marker yet took longer than {self.limit_s:g} s in their setup and "
                "call (MITIGA_UNMARKED_LIMIT_S): mark them slow, integration or node (tests/tiers.py), or make them "
                f"faster. Those over {self.fail_s:g} s (MITIGA_UNMARKED_FAIL_S) fail the run.")
            for nodeid, seconds in sorted(self.too_slow.items(), key=lambda kv: -kv[1]):
                verdict = "  (fails the run)" if seconds > self.fail_s else ""
                terminalreporter.write_line(f"{seconds:8.1f} s  {nodeid}{verdict}")

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.failing and exitstatus == 0:
            session.exitstatus = 1


@pytest.hookimpl(tryfirst=True, optionalhook=True)  # before pytest-xdist's own, which is registered later
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    """``-n N`` (``--dist load``): the modules spread over the workers as they free up, each shared suite on one."""
    if config.getvalue("dist") not in ("load", "loadgroup"):
        return None
    from xdist.scheduler import LoadScopeScheduling

    class SharedSuites(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            return scope_of(nodeid)

    return SharedSuites(config, log)


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(SharedFixtureTimer(), "mitiga-shared-fixture-timer")
    if not hasattr(config, "workerinput"):  # under xdist, the controller sees every worker's reports
        config.pluginmanager.register(TierClock(), "mitiga-tier-clock")
