"""Runs jobs as local subprocesses (the standalone mode's stand-in for Kubernetes Jobs)."""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import threading

from mitiga_core.jobs.base import JobLauncher, JobSpec, JobState

log = logging.getLogger(__name__)


class LocalSubprocessLauncher(JobLauncher):
    """``spec.args`` is run as ``python -m <args...>`` with ``spec.env`` added to this environment."""

    def __init__(self, python: str = sys.executable) -> None:
        self._python = python
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._lock = threading.Lock()

    def launch(self, spec: JobSpec) -> bool:
        with self._lock:
            if spec.name in self._procs:
                return False
            env = {**os.environ, **spec.env}
            proc = subprocess.Popen([self._python, "-m", *spec.args], env=env)  # noqa: S603
            self._procs[spec.name] = proc
        log.info("job started", extra={"job": spec.name, "pid": proc.pid, "labels": spec.labels})
        return True

    def state(self, name: str) -> JobState:
        with self._lock:
            proc = self._procs[name]
        code = proc.poll()
        if code is None:
            return JobState.RUNNING
        return JobState.SUCCEEDED if code == 0 else JobState.FAILED

    def wait(self, name: str, timeout_s: float) -> JobState:
        with self._lock:
            proc = self._procs[name]
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=timeout_s)
        return self.state(name)
