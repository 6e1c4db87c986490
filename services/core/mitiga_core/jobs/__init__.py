"""Job launcher: the interface, its local-subprocess implementation, and the Kubernetes one
(``mitiga_core.jobs.kubernetes``, imported on use)."""

from mitiga_core.jobs.base import JobLauncher, JobSpec, JobState
from mitiga_core.jobs.local import LocalSubprocessLauncher

__all__ = ["JobLauncher", "JobSpec", "JobState", "LocalSubprocessLauncher"]
