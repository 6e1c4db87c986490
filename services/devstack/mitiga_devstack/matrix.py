"""``make matrix``: the suites that touch each external part, run against each version of it this machine can get,
and the results written to ``docs/compatibility.md`` (not part of ``make test``).

A cell is one version of one part with the suites that exercise it, run by pytest in a process of its own with the
environment that selects the version (``KAFKA_VERSION`` for the broker's jars from Maven Central, for example). A
version this machine cannot get is listed with the reason instead of a result, so the table never claims more than
was run.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from mitiga_devstack.process import CACHE, run_script
from mitiga_devstack.process import REPO as ROOT


@dataclass(frozen=True)
class Cell:
    part: str
    version: str
    suites: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    unavailable: str = ""
    """Why this version cannot be had on this machine (then nothing is run)."""
    build: tuple[str, ...] = ()
    """A script of ``scripts/`` (with its arguments) run with ``env`` before the suites: it builds the version."""
    build_note: str = ""
    """A file in the cache the build may leave, saying how the version was built (stated beside the version)."""


@dataclass
class Result:
    cell: Cell
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    seconds: float = 0.0
    reason: str = ""
    note: str = ""


KAFKA_SUITES = ("tests/core/test_kafka_bus.py", "tests/devstack/test_stack_loop.py")
HELM_SUITES = ("tests/k8s/test_rollout.py",)
HELM_4 = "v4.3.2"
"""The newest Helm 4 the module proxy serves here."""
REDIS_SUITES = ("tests/core/test_redis_state.py",)
K8S_SUITES = ("tests/k8s", "tests/security/test_job_admission.py", "tests/security/test_rbac_matrix.py",
              "tests/security/test_token_secret.py", "tests/security/test_default_feedback.py")
"""The control plane (kwok's node), the chart rendered with ``--kube-version`` and validated by the API server,
the admission policy, RBAC, Jobs and the Helm rollout."""
NODE_SUITES = ("tests/node",)
"""A real node: this version's kubelet and kube-proxy with the machine's containerd (1.6) on cgroup v1."""
KUBERNETES = ("v1.31.13", "v1.33.13", "v1.34.4", "v1.35.4", "v1.37.2")
"""A patch of each minor from 1.31 (the oldest the chart declares) to 1.37, the newest the module proxy serves here:
the newest of each whose staging modules it mostly serves (1.31.14 lacks four; 1.31.13 two, built with the
nearest patches). 1.34.4 is ``make test``'s. 1.36 is left out: two minors either side are enough to hold the range."""
REAL_NODE = ("v1.31.13", "v1.35.4")
"""The versions whose kubelet also runs a real node in the matrix (1.34.4's runs in ``make test``)."""


def _redis_version() -> str:
    found = shutil.which("redis-server")
    if found is None:
        return "none installed"
    out = subprocess.run([found, "--version"], capture_output=True, text=True, check=False).stdout  # noqa: S603
    match = re.search(r"v=(\S+)", out)
    return f"{match.group(1) if match else out.strip()} (Debian's redis-server)"


def cells() -> list[Cell]:
    """Every cell of the matrix, in the order of the table."""
    return [
        Cell("Kafka", "3.9.1 (KRaft)", KAFKA_SUITES, {"KAFKA_VERSION": "3.9.1"}),
        Cell("Kafka", "4.4.0 (KRaft; the newest 4.x on Maven Central here)", KAFKA_SUITES,
             {"KAFKA_VERSION": "4.4.0"}),
        Cell("Redis", _redis_version(), REDIS_SUITES),
        Cell("Helm", "3.19.0 (the control plane's)", HELM_SUITES),
        Cell("Helm", HELM_4.removeprefix("v"), HELM_SUITES,
             {"MITIGA_HELM_BINARY": run_script("build-helm.sh", HELM_4)}),
        *(Cell("Kubernetes", v.removeprefix("v"), K8S_SUITES, {"K8S_VERSION": v}, build=("build-k8s.sh",),
               build_note=f"tools/kubernetes-{v}/staging-substitutions.txt") for v in KUBERNETES),
        *(Cell("Kubernetes", f"{v.removeprefix('v')}, real node", NODE_SUITES, {"K8S_VERSION": v},
               build=("build-k8s.sh",), build_note=f"tools/kubernetes-{v}/staging-substitutions.txt")
          for v in REAL_NODE),
        Cell("Valkey", "any", REDIS_SUITES, unavailable="Debian 12 (bookworm), where this machine's servers come "
             "from, has no valkey-server package"),
    ]


def run_cell(cell: Cell, python: str = sys.executable) -> Result:
    """Run the cell's suites in a pytest process of its own; count what passed and name the first failure."""
    result = Result(cell)
    if cell.unavailable:
        result.reason = cell.unavailable
        return result
    env = {**os.environ, **cell.env}
    if cell.build:
        built = subprocess.run(["bash", str(ROOT / "scripts" / cell.build[0]), *cell.build[1:]],  # noqa: S603, S607
                               env=env, capture_output=True, text=True, check=False)
        if built.returncode != 0:
            tail = built.stderr.strip().splitlines()
            result.reason = f"{Path(cell.build[0]).name} failed: {tail[-1] if tail else built.returncode}"[:300]
            result.failed = 1
            return result
        note = CACHE / cell.build_note if cell.build_note else None
        if note is not None and note.is_file():
            result.note = "; ".join(line.strip() for line in note.read_text().splitlines() if line.strip())
    with tempfile.TemporaryDirectory(prefix="mitiga-matrix-") as tmp:
        report = Path(tmp) / "junit.xml"
        started = time.monotonic()
        done = subprocess.run(  # noqa: S603 - our own interpreter on our own test files
            [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--basetemp={tmp}/t",
             f"--junitxml={report}", *cell.suites],
            cwd=ROOT, env=env, capture_output=True, text=True, check=False)
        result.seconds = time.monotonic() - started
        if not report.exists():
            tail = (done.stdout + done.stderr).strip().splitlines()
            result.reason = tail[-1] if tail else f"pytest exited {done.returncode} without a report"
            result.failed = 1
            return result
        for case in ET.parse(report).getroot().iter("testcase"):  # noqa: S314
            failure = case.find("failure")
            if failure is None:
                failure = case.find("error")
            if failure is not None:
                result.failed += 1
                if not result.reason:
                    message = (failure.get("message") or "").splitlines()
                    result.reason = f"{case.get('name')}: {message[0] if message else 'failed'}"[:300]
            elif case.find("skipped") is not None:
                result.skipped += 1
            else:
                result.passed += 1
    return result


def render(results: list[Result], when: str) -> str:
    """The table of ``docs/compatibility.md``."""
    lines = [
        "# Compatibility", "",
        "Written by `make matrix` (`mitiga_devstack.matrix`): each version of each external part, with the suites "
        "that touch it run against it on this machine. A version that could not be had here says why; nothing "
        f"else is claimed. Last run: {when}.", "",
        "| part | version | suites | result |", "|---|---|---|---|",
    ]
    for r in results:
        suites = ", ".join(f"`{s.removeprefix('tests/')}`" for s in r.cell.suites)
        if r.cell.unavailable:
            outcome = f"not run: {r.reason}"
        elif r.failed:
            outcome = f"**failed** ({r.failed} of {r.passed + r.failed}): {r.reason}"
        else:
            outcome = f"passed ({r.passed} tests, {r.seconds:.0f} s)"
        version = r.cell.version
        if r.note:
            version += f" (built with staging modules the module proxy serves instead of this patch's: {r.note})"
        lines.append(f"| {r.cell.part} | {version} | {suites} | {outcome} |")
    lines.append("")
    return "\n".join(lines)


def main() -> int:
    results = []
    for cell in cells():
        print(f"matrix: {cell.part} {cell.version} ...", file=sys.stderr, flush=True)
        results.append(run_cell(cell))
        r = results[-1]
        print(f"matrix: {cell.part} {cell.version}: {r.passed} passed, {r.failed} failed {r.reason}",
              file=sys.stderr, flush=True)
    (ROOT / "docs" / "compatibility.md").write_text(render(results, time.strftime("%Y-%m-%d")))
    return 1 if any(r.failed for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
