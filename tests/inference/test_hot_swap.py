"""Hot swaps under concurrent load fail no request; rollout events swap to the store's champion."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from mitiga_core.bundle import load_keras, read_manifest, read_reference, save_bundle
from mitiga_core.bundle.manifest import Lineage
from mitiga_core.events import Topic, encode
from mitiga_core.pb.mitiga.v1 import events_pb2 as pb
from mitiga_core.store import FilesystemModelStore
from tests.inference.conftest import ADMIN, start_service, window_request

pytestmark = pytest.mark.slow


def add_shifted_version(root: Path, name: str, shift: float) -> str:
    """A second version of ``name`` whose last bias is moved, so its outputs differ from version 1."""
    store = FilesystemModelStore(root)
    folder = store.path(name, "1")
    model = load_keras(folder / "model.keras")
    last = model.layers[-1]
    kernel, bias = last.get_weights()
    last.set_weights([kernel, bias + shift])
    manifest = read_manifest(folder).model_copy(update={"lineage": Lineage(parent="1", trigger="manual")})
    return save_bundle(store, manifest, model, read_reference(folder)).version


async def hammer(url: str, body: dict, stop: asyncio.Event, workers: int = 12) -> list[tuple[int, str, float]]:
    results: list[tuple[int, str, float]] = []

    async def worker(client: httpx.AsyncClient) -> None:
        while not stop.is_set():
            r = await client.post("/v2/models/lstm/infer", json=body)
            if r.status_code == 200:
                out = r.json()
                results.append((200, out["model_version"], out["outputs"][0]["data"][0]))
            else:
                results.append((r.status_code, r.text, 0.0))

    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        await asyncio.gather(*(worker(client) for _ in range(workers)))
    return results


def test_swap_under_load_has_zero_failures(store_copy: Path) -> None:
    version = add_shifted_version(store_copy, "lstm", shift=0.5)
    service = start_service(store_copy)
    body = window_request(1)

    async def scenario() -> list[tuple[int, str, float]]:
        stop = asyncio.Event()
        load = asyncio.create_task(hammer(service.url, body, stop))
        await asyncio.sleep(1.0)
        async with httpx.AsyncClient(base_url=service.url, timeout=120) as admin:
            r = await admin.post("/v2/repository/models/lstm/load", params={"version": version}, headers=ADMIN)
            assert r.status_code == 200, r.text
        await asyncio.sleep(1.0)
        stop.set()
        return await load

    try:
        results = asyncio.run(scenario())
    finally:
        service.running.stop()
    failures = [r for r in results if r[0] != 200]
    assert failures == []
    by_version: dict[str, set[float]] = {}
    for _, served, value in results:
        by_version.setdefault(served, set()).add(round(value, 4))
    assert set(by_version) == {"1", version}, by_version.keys()
    assert all(len(values) == 1 for values in by_version.values()), "a version answered with another's weights"
    assert results[-1][1] == version
    assert abs(by_version[version].pop() - by_version["1"].pop()) > 1e-3


def test_rollout_event_swaps_to_champion(store_copy: Path) -> None:
    service = start_service(store_copy)
    try:
        with service.client() as client:
            first = client.post("/v2/models/lstm/infer", json=window_request(1)).json()
            version = add_shifted_version(store_copy, "lstm", shift=-0.5)
            service.store.set_champion("lstm", version)
            rollout = pb.ModelRollout(event_id="r1", model_name="lstm", version=version, previous_version="1")
            service.bus.publish(Topic.ROLLOUT, encode(rollout, source="test", key="lstm"))
            deadline = time.monotonic() + 60
            while client.get("/v2/models/lstm").json()["parameters"]["version"] != version:
                assert time.monotonic() < deadline, "rollout was not applied"
                time.sleep(0.1)
            second = client.post("/v2/models/lstm/infer", json=window_request(1)).json()
            assert second["model_version"] == version
            assert not np.isclose(first["outputs"][0]["data"][0], second["outputs"][0]["data"][0])
            # a stale rollout naming the old version changes nothing: the store's champion wins
            stale = pb.ModelRollout(event_id="r0", model_name="lstm", version="1")
            service.bus.publish(Topic.ROLLOUT, encode(stale, source="test", key="lstm"))
            time.sleep(1.0)
            assert client.post("/v2/models/lstm/infer", json=window_request(1)).json()["model_version"] == version
    finally:
        service.running.stop()


def test_a_pinned_version_is_served_and_rollout_events_leave_it_alone(store_copy: Path) -> None:
    version = add_shifted_version(store_copy, "lstm", shift=-0.5)  # the champion stays "1"
    service = start_service(store_copy, model_versions={"lstm": version})
    try:
        with service.client() as client:
            assert client.get("/v2/models/lstm").json()["parameters"]["version"] == version
            rollout = pb.ModelRollout(event_id="r1", model_name="lstm", version="1")
            service.bus.publish(Topic.ROLLOUT, encode(rollout, source="test", key="lstm"))
            time.sleep(1.0)
            assert client.post("/v2/models/lstm/infer", json=window_request(1)).json()["model_version"] == version
    finally:
        service.running.stop()
