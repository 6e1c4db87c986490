"""A model store on a filesystem (a shared volume in Kubernetes).

Layout::

    ROOT/NAME/versions/N/...      one folder per version, created by an atomic rename
    ROOT/NAME/champion.json       {"version": "N", "history": [...]}, replaced atomically
    ROOT/NAME/candidate.json      the version on live trial (shadow or canary) and how; absent when none
    ROOT/NAME/decisions.jsonl     gate decisions, one JSON object a line, appended
    ROOT/NAME/.staging-*/         in-progress writes, never read
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from mitiga_core.errors import ModelNotFound
from mitiga_core.store.base import ModelStore

if TYPE_CHECKING:
    from collections.abc import Callable

_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


def is_model_name(name: str) -> bool:
    return _NAME.fullmatch(name) is not None


def check_model_name(name: str) -> str:
    """One rule for model names everywhere: a DNS label (RFC 1123), as the chart's values accept, so a name that
    is uploaded can never fail later in a path, a Job name, a label value or a ``--set-string`` path."""
    if not is_model_name(name):
        raise ValueError(f"invalid model name {name!r}: use a DNS label: lowercase letters, digits and '-', "
                         "beginning and ending with a letter or digit, at most 63 characters")
    return name


def existing_model_name(name: str) -> str:
    """For a lookup: a name that cannot be a model's is a model that is not there (404), before it reaches a
    path."""
    if not is_model_name(name):
        raise ModelNotFound(f"model {name!r} not found (model names are DNS labels: lowercase letters, digits, '-')")
    return name


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class FilesystemModelStore(ModelStore):
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def _versions_dir(self, name: str) -> Path:
        return self.root / check_model_name(name) / "versions"

    def list_models(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir()
                      if p.is_dir() and is_model_name(p.name) and self.list_versions(p.name))

    def list_versions(self, name: str) -> list[str]:
        folder = self._versions_dir(name)
        if not folder.is_dir():
            return []
        return sorted((p.name for p in folder.iterdir() if p.name.isdigit()), key=int)

    def write_version(self, name: str, populate: Callable[[Path, str], None]) -> str:
        versions = self._versions_dir(name)
        versions.mkdir(parents=True, exist_ok=True)
        while True:
            existing = self.list_versions(name)
            version = str(int(existing[-1]) + 1 if existing else 1)
            staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=versions.parent))
            try:
                populate(staging, version)
                try:
                    staging.rename(versions / version)
                except OSError:
                    if (versions / version).exists():
                        continue  # another writer took this number: populate again with the next
                    raise
                return version
            finally:
                if staging.exists():
                    shutil.rmtree(staging, ignore_errors=True)

    def path(self, name: str, version: str) -> Path:
        folder = self._versions_dir(name) / str(version)
        if not str(version).isdigit() or not folder.is_dir():
            raise ModelNotFound(f"model {name!r} has no version {version!r}")
        return folder

    def _pointer(self, name: str) -> dict[str, object]:
        path = self.root / check_model_name(name) / "champion.json"
        if not path.exists():
            return {"version": None, "history": []}
        data: dict[str, object] = json.loads(path.read_text())
        return data

    def champion(self, name: str) -> str | None:
        version = self._pointer(name)["version"]
        return None if version is None else str(version)

    def set_champion(self, name: str, version: str) -> None:
        self.path(name, version)
        with self._lock:
            pointer = self._pointer(name)
            history = [str(v) for v in pointer["history"]] if isinstance(pointer["history"], list) else []
            if not history or history[-1] != version:
                history.append(version)
            body = json.dumps({"version": version, "history": history}).encode()
            _write_atomic(self.root / name / "champion.json", body)

    def champion_history(self, name: str) -> list[str]:
        history = self._pointer(name)["history"]
        return [str(v) for v in history] if isinstance(history, list) else []

    def candidate(self, name: str) -> dict[str, object] | None:
        path = self.root / check_model_name(name) / "candidate.json"
        try:
            found: dict[str, object] = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        return found

    def set_candidate(self, name: str, candidate: dict[str, object] | None) -> None:
        path = self.root / check_model_name(name) / "candidate.json"
        with self._lock:
            if candidate is None:
                path.unlink(missing_ok=True)
                return
            self.path(name, str(candidate["version"]))
            _write_atomic(path, json.dumps(candidate, default=str).encode())

    def record_decision(self, name: str, decision: dict[str, object]) -> None:
        folder = self.root / check_model_name(name)
        folder.mkdir(parents=True, exist_ok=True)
        line = (json.dumps(decision, default=str) + "\n").encode()
        with self._lock:
            fd = os.open(folder / "decisions.jsonl", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)

    def decisions(self, name: str) -> list[dict[str, object]]:
        path = self.root / check_model_name(name) / "decisions.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
