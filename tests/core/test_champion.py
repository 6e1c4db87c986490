"""The one way a champion changes: the store's pointer, the event that announces it, and a rollback's record."""

from __future__ import annotations

from pathlib import Path

import pytest

from mitiga_core.champion import promote, rollback
from mitiga_core.errors import Conflict, ModelNotFound
from mitiga_core.store import FilesystemModelStore
from tests.detector.conftest import three_champions, write_bundle


@pytest.fixture
def store(tmp_path: Path) -> FilesystemModelStore:
    return three_champions(tmp_path)  # versions 1, 2, 3; each became champion


def test_promote_points_the_store_and_announces_what_it_replaced(store: FilesystemModelStore) -> None:
    event = promote(store, "tab", "1", reason="retrain (auto)", request_id="r-1")
    assert store.champion("tab") == "1"
    assert (event.model_name, event.version, event.previous_version, event.reason, event.request_id) == (
        "tab", "1", "3", "retrain (auto)", "r-1")
    assert event.event_id and event.time.seconds > 0
    assert store.decisions("tab") == []  # a promotion's decision is the gate's to record


def test_rollback_returns_to_the_champion_before_and_records_it(store: FilesystemModelStore) -> None:
    event = rollback(store, "tab")
    assert (event.version, event.previous_version, event.reason) == ("2", "3", "rollback")
    assert store.champion("tab") == "2"
    assert store.decisions("tab")[-1] == {"rollback": True, "from": "3", "version": "2", "promote": True}
    assert rollback(store, "tab", "1").version == "1" and store.champion("tab") == "1"


@pytest.mark.parametrize(("name", "to", "error", "needle"), [
    ("tab", "9", ModelNotFound, "no version '9'"),
    ("ghost", None, ModelNotFound, "has no champion"),
])
def test_a_refused_rollback_changes_nothing(store: FilesystemModelStore, name: str, to: str | None,
                                            error: type[Exception], needle: str) -> None:
    with pytest.raises(error, match=needle):
        rollback(store, name, to)
    assert store.champion("tab") == "3" and store.decisions("tab") == []


def test_a_model_with_one_champion_has_nothing_to_return_to(tmp_path: Path) -> None:
    models = FilesystemModelStore(tmp_path)
    write_bundle(models)
    with pytest.raises(Conflict, match="no earlier champion"):
        rollback(models, "tab")
    assert models.champion("tab") == "1"
