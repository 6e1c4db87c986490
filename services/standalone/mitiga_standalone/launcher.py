"""The standalone mode's job launcher: retrainer jobs run in a thread of this process, on the stack's own
adapters. (The embedded bus and state store cannot be reached from another process; with Kafka and Redis the
local subprocess launcher or Kubernetes Jobs run the same job.)"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from mitiga_core import retrain_request
from mitiga_core.errors import InvalidInput
from mitiga_core.jobs import JobLauncher, JobSpec, JobState

if TYPE_CHECKING:
    from mitiga_core.bus import Bus
    from mitiga_core.state import StateStore
    from mitiga_core.store import FilesystemModelStore

log = logging.getLogger(__name__)


def settings_of(spec: JobSpec) -> dict[str, Any]:
    """A retraining job's request (``MITIGA_RETRAIN_REQUEST`` in its environment) → the retrainer settings it sets."""
    text = spec.env.get(retrain_request.ENV)
    if not text:
        raise ValueError(f"a retraining job carries its request in {retrain_request.ENV}: {spec}")
    return retrain_request.settings_fields(retrain_request.parse(text))


class InProcessLauncher(JobLauncher):
    def __init__(self, *, store: FilesystemModelStore, state: StateStore, bus: Bus,
                 defaults: dict[str, Any] | None = None) -> None:
        self._store = store
        self._state = state
        self._bus = bus
        self._defaults = defaults or {}
        self._threads: dict[str, threading.Thread] = {}
        self._states: dict[str, JobState] = {}
        self.results: dict[str, Any] = {}
        self._lock = threading.Lock()

    def launch(self, spec: JobSpec) -> bool:
        with self._lock:
            if spec.name in self._threads:
                return False
            thread = threading.Thread(target=self._run, args=(spec,), name=f"job-{spec.name}", daemon=True)
            self._threads[spec.name] = thread
            self._states[spec.name] = JobState.RUNNING
        thread.start()
        return True

    def _run(self, spec: JobSpec) -> None:
        from mitiga_retrainer.job import JobFailed, run_job
        from mitiga_retrainer.settings import RetrainerSettings

        try:
            settings = RetrainerSettings(**{**self._defaults, **settings_of(spec),
                                            "model_store_path": self._store.root})
            self.results[spec.name] = run_job(settings, store=self._store, state=self._state, bus=self._bus)
            self._states[spec.name] = JobState.SUCCEEDED
        except (JobFailed, InvalidInput, ValueError) as exc:
            log.error("job failed", extra={"job": spec.name, "reason": str(exc)})
            self.results[spec.name] = str(exc)
            self._states[spec.name] = JobState.FAILED

    def state(self, name: str) -> JobState:
        return self._states[name]

    def wait(self, name: str, timeout_s: float) -> JobState:
        self._threads[name].join(timeout_s)
        return self._states[name]

    def wait_all(self, timeout_s: float = 600) -> None:
        for name in list(self._threads):
            self.wait(name, timeout_s)
