"""Job launcher: the interface and its local-subprocess implementation (Kubernetes Jobs come beside it)."""

from mitiga_core.jobs.base import JobLauncher, JobSpec, JobState
from mitiga_core.jobs.local import LocalSubprocessLauncher

__all__ = ["JobLauncher", "JobSpec", "JobState", "LocalSubprocessLauncher"]
