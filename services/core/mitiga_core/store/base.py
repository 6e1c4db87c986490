"""The model store interface: versioned, atomic writes, a champion pointer per model."""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path


class ModelStore(abc.ABC):
    """Versions are positive integers as strings ("1", "2", ...), allocated by the store."""

    @abc.abstractmethod
    def list_models(self) -> list[str]:
        """Names of the models with at least one version."""

    @abc.abstractmethod
    def list_versions(self, name: str) -> list[str]:
        """The model's versions, oldest first."""

    @abc.abstractmethod
    def write_version(self, name: str, populate: Callable[[Path, str], None]) -> str:
        """Create a new version atomically.

        ``populate(folder, version)`` writes the version's files into an empty staging folder;
        only when it returns does the version appear, complete. If it raises, nothing appears.
        """

    @abc.abstractmethod
    def path(self, name: str, version: str) -> Path:
        """A local folder holding the version's files. Raises ModelNotFound."""

    @abc.abstractmethod
    def champion(self, name: str) -> str | None:
        """The version that should be served, or ``None``."""

    @abc.abstractmethod
    def set_champion(self, name: str, version: str) -> None:
        """Point the champion at an existing version (the previous one is kept in the history)."""

    @abc.abstractmethod
    def champion_history(self, name: str) -> list[str]:
        """Every version that has been champion, oldest first."""

    @abc.abstractmethod
    def candidate(self, name: str) -> dict[str, object] | None:
        """The version on live trial beside the champion (shadow or canary) and how, or ``None``."""

    @abc.abstractmethod
    def set_candidate(self, name: str, candidate: dict[str, object] | None) -> None:
        """Put a version on live trial (``candidate["version"]`` must exist), or end the trial (``None``)."""

    @abc.abstractmethod
    def record_decision(self, name: str, decision: dict[str, object]) -> None:
        """Append a gate decision (promoted or not) to the model's registry log."""

    @abc.abstractmethod
    def decisions(self, name: str) -> list[dict[str, object]]:
        """The model's gate decisions, oldest first."""
