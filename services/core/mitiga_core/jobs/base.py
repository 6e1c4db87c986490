"""The job launcher interface: run a retrainer job once per name and follow it to its end."""

from __future__ import annotations

import abc
import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable


class JobState(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED)


@dataclass(frozen=True)
class JobSpec:
    """What to run. ``name`` is deterministic per trigger, so launching it twice runs it once."""

    name: str
    args: list[str]
    env: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)


class JobLauncher(abc.ABC):
    @abc.abstractmethod
    def launch(self, spec: JobSpec) -> bool:
        """Start the job. False when a job of that name already exists (nothing new is started)."""

    @abc.abstractmethod
    def state(self, name: str) -> JobState:
        """The job's state. Raises KeyError for an unknown name."""

    @abc.abstractmethod
    def wait(self, name: str, timeout_s: float) -> JobState:
        """Block until the job finishes or the timeout passes; return its state."""

    def follow(self, on_finished: Callable[[dict[str, str], str, JobState], None]) -> object | None:
        """Report every job that finishes from now on as ``on_finished(labels, name, state)`` (optional)."""
        return None

    def close(self) -> None:  # noqa: B027 - optional hook
        """Stop following."""
