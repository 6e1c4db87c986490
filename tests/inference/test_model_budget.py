"""Many models in one replica within MITIGA_MODEL_MEMORY_BUDGET: a registered model loads on its first request (the
requests that come meanwhile wait for the same load), the least recently used model is unloaded past the budget,
pinned models and a model with a version loaded beside are never, each load is counted and timed, and readiness
says what a request would meet."""

from __future__ import annotations

import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from mitiga_inference.budget import MemoryBudget
from tests.inference.conftest import ADMIN, start_service, window_request
from tests.inference.test_hot_swap import add_shifted_version

pytestmark = pytest.mark.slow


def _copies(store: Path, names: list[str]) -> None:
    """The LSTM registered again under each of ``names``."""
    for name in names:
        shutil.copytree(store / "lstm", store / name)
        for manifest in (store / name / "versions").glob("*/manifest.json"):
            manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "name": name}))


def _metric(text: str, name: str) -> float:
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name))


def _states(client) -> dict[str, tuple[str, str]]:  # type: ignore[no-untyped-def]
    rows = client.post("/v2/repository/index").json()
    return {r["name"]: (r["state"], r["reason"]) for r in rows if r["reason"] != "loaded beside the current one"}


def test_models_load_on_their_first_request_and_the_least_recently_used_is_unloaded(store_copy: Path) -> None:
    _copies(store_copy, ["m0", "m1", "m2"])
    # a budget of one byte: every model is over it, so only the pinned one and the last used stay
    service = start_service(store_copy, model_memory_budget=1, models=["lstm"])
    try:
        with service.client() as client:
            states = _states(client)
            assert states["lstm"][0] == "READY" and states["m0"] == ("UNAVAILABLE", "loads on its first request")
            assert client.get("/v2/models/m0/ready").status_code == 200  # a request would load it
            assert client.get("/v2/models/nobody/ready").status_code == 404
            with ThreadPoolExecutor(8) as pool:  # eight requests for a model that is not loaded: one load
                answers = list(pool.map(lambda i: client.post("/v2/models/m0/infer", json=window_request(1)),
                                        range(8)))
            assert [a.status_code for a in answers] == [200] * 8, answers[0].text
            metrics = client.get("/metrics").text
            assert _metric(metrics, 'mitiga_inference_model_loads_total{trigger="request"}') == 1
            assert _metric(metrics, 'mitiga_inference_model_loads_total{trigger="startup"}') == 1
            assert _metric(metrics, 'mitiga_inference_model_load_seconds_count{trigger="request"}') == 1
            assert client.post("/v2/models/m1/infer", json=window_request(1)).status_code == 200
            states = _states(client)
            assert states["m1"][0] == "READY" and states["lstm"][0] == "READY"  # the pinned one stays
            assert states["m0"] == ("UNAVAILABLE", "unloaded past the memory budget; loads on its next request")
            metrics = client.get("/metrics").text
            assert _metric(metrics, "mitiga_inference_model_evictions_total") == 1
            assert _metric(metrics, "mitiga_inference_loaded_models ") == 2
            assert _metric(metrics, "mitiga_inference_memory_budget_bytes ") == 1
            assert client.post("/v2/models/m0/infer", json=window_request(1)).status_code == 200  # loads again
            assert _metric(client.get("/metrics").text, 'mitiga_inference_model_loads_total{trigger="request"}') == 3
            assert _states(client)["m1"][0] == "UNAVAILABLE"
            assert client.get("/v2/models/m2").json()["name"] == "m2"  # metadata loads it too (tritonclient asks)
    finally:
        service.running.stop()


def test_a_model_with_a_version_loaded_beside_is_never_unloaded(store_copy: Path) -> None:
    _copies(store_copy, ["m0"])
    second = add_shifted_version(store_copy, "lstm", 5.0)
    service = start_service(store_copy, model_memory_budget=1)
    try:
        with service.client() as client:
            assert client.get("/v2/health/ready").status_code == 200  # nothing pinned: ready with nothing loaded
            assert client.post("/v2/models/lstm/infer", json=window_request(1)).status_code == 200
            beside = client.post(f"/v2/repository/models/lstm/versions/{second}/load", headers=ADMIN)
            assert beside.status_code == 200, beside.text
            assert client.post("/v2/models/m0/infer", json=window_request(1)).status_code == 200
            assert _states(client)["lstm"][0] == "READY"
            assert client.post(f"/v2/models/lstm/versions/{second}/infer", json=window_request(1)).status_code == 200
    finally:
        service.running.stop()


def test_the_budget_unloads_the_least_recently_used_first_and_only_what_it_must() -> None:
    budget = MemoryBudget(100, pinned=["p"])
    for name, cost in (("p", 30), ("a", 30), ("b", 30), ("c", 30)):
        budget.loaded(name, cost)
    budget.touch("a")  # order of use: p, b, c, a
    assert budget.used == 120
    assert budget.victims("c", lambda n: True) == ["b"]  # 20 over: the least recently used that may go
    assert budget.victims("c", lambda n: n != "b") == ["a"]
    budget.loaded("d", 40)
    assert budget.victims("d", lambda n: True) == ["b", "c"]  # 60 over: two, not three
    budget.unloaded("b")
    budget.unloaded("c")
    budget.loaded("e", 20)
    assert budget.used == 120 and budget.victims("e", lambda n: n == "e") == []  # only those kept remain


def test_models_loaded_and_unloaded_again_and_again_do_not_grow_the_replicas_memory(store_copy: Path) -> None:
    """Two models taking turns under a budget that holds one: every request loads its model and unloads the other.
    (With XLA each cycle kept about 2 MB of compiled code that TensorFlow never frees.)"""
    from mitiga_inference.budget import resident_bytes

    _copies(store_copy, ["m0", "m1"])
    service = start_service(store_copy, model_memory_budget=1)
    try:
        with service.client() as client:
            def turns(n: int) -> None:
                for i in range(n):
                    answer = client.post(f"/v2/models/m{i % 2}/infer", json=window_request(1))
                    assert answer.status_code == 200, answer.text

            turns(20)  # the first loads allocate what every later load reuses
            before = resident_bytes()
            turns(30)
            grown = (resident_bytes() - before) / 2**20
            loads = _metric(client.get("/metrics").text, 'mitiga_inference_model_loads_total{trigger="request"}')
            assert loads == 50
            assert grown < 20, f"the process grew by {grown:.1f} MiB over 30 loads and unloads"
    finally:
        service.running.stop()
