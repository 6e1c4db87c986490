from __future__ import annotations

import threading
from pathlib import Path

import pytest

from mitiga_core.errors import ModelNotFound
from mitiga_core.store import FilesystemModelStore


def write(folder: Path, version: str) -> None:
    (folder / "file.txt").write_text(version)


def test_versions_are_allocated_in_order_and_champion_tracks_history(tmp_path: Path) -> None:
    store = FilesystemModelStore(tmp_path)
    assert store.list_models() == [] and store.champion("m") is None
    assert [store.write_version("m", write) for _ in range(3)] == ["1", "2", "3"]
    assert (store.path("m", "2") / "file.txt").read_text() == "2"
    store.set_champion("m", "1")
    store.set_champion("m", "3")
    assert store.champion("m") == "3" and store.champion_history("m") == ["1", "3"]
    with pytest.raises(ModelNotFound):
        store.set_champion("m", "9")
    assert store.list_models() == ["m"]


def test_failed_write_leaves_nothing(tmp_path: Path) -> None:
    store = FilesystemModelStore(tmp_path)

    def half(folder: Path, version: str) -> None:
        (folder / "model.keras").write_bytes(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        store.write_version("m", half)
    assert store.list_versions("m") == []
    assert list((tmp_path / "m").iterdir()) == [tmp_path / "m" / "versions"]
    assert list((tmp_path / "m" / "versions").iterdir()) == []


def test_concurrent_writers_get_distinct_versions(tmp_path: Path) -> None:
    store = FilesystemModelStore(tmp_path)
    results: list[str] = []
    lock = threading.Lock()

    def writer() -> None:
        version = store.write_version("m", write)
        with lock:
            results.append(version)

    threads = [threading.Thread(target=writer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results, key=int) == [str(i) for i in range(1, 9)]
    for version in results:  # each folder was populated for its own number
        assert (store.path("m", version) / "file.txt").read_text() == version


@pytest.mark.parametrize("name", ["", "../etc", "a/b", "x" * 64, "-lead", "trail-", "Upper", "under_score", "dot.ted",
                                  "_x"])
def test_bad_model_names_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="invalid model name"):
        FilesystemModelStore(tmp_path).list_versions(name)


def test_folders_that_are_not_model_names_are_not_models(tmp_path: Path) -> None:
    store = FilesystemModelStore(tmp_path)
    (tmp_path / "lost+found").mkdir()  # as on a fresh volume
    (tmp_path / "Old_Name" / "versions" / "1").mkdir(parents=True)
    assert store.list_models() == []


def test_decisions_are_appended_and_read_back(tmp_path: Path) -> None:
    store = FilesystemModelStore(tmp_path)
    assert store.decisions("m") == []
    store.record_decision("m", {"promote": False, "challenger": 0.5})
    store.record_decision("m", {"promote": True, "challenger": 0.2})
    assert [d["promote"] for d in store.decisions("m")] == [False, True]
