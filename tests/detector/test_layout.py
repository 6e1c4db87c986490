"""The detector's parts meet only through the core: the API and the reports read the read model, never the lock."""

from __future__ import annotations

import ast
from pathlib import Path

import mitiga_detector

PACKAGE = Path(mitiga_detector.__file__).parent
READERS = ("api.py", "reports.py", "manual.py")


def attributes(path: Path) -> set[str]:
    return {node.attr for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.Attribute)}


def test_the_api_and_the_reports_never_touch_the_cores_lock_or_its_parts() -> None:
    for name in READERS:
        used = attributes(PACKAGE / name)
        assert not used & {"lock", "_lock", "_monitors", "_ingest", "_react", "_staged"}, name


def test_only_the_core_names_its_lock() -> None:
    """The read model gets the lock from the core; no other module reaches for ``core.lock``."""
    takers = {path.name for path in PACKAGE.glob("*.py") if "lock" in attributes(path)}
    assert takers == {"core.py"}, takers
