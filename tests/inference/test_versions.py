"""Versions side by side: one process serves the current version on the unversioned routes and others, loaded
beside it, on their versioned routes, each answering (and publishing events) as itself, up to a cap per model;
each loaded version's weights are counted in a gauge."""

from __future__ import annotations

from pathlib import Path

import pytest

from mitiga_core.events import Topic, decode_as
from mitiga_core.pb.mitiga.v1 import events_pb2 as pb
from tests.conftest import wait_for
from tests.inference.conftest import ADMIN, start_service, window_request
from tests.inference.test_hot_swap import add_shifted_version

pytestmark = pytest.mark.slow


def _memory(text: str) -> dict[str, float]:
    """The LSTM's versions in the memory gauge, with their bytes."""
    return {line.split('version="')[1].split('"')[0]: float(line.split()[-1]) for line in text.splitlines()
            if line.startswith("mitiga_inference_model_memory_bytes{") and 'model="lstm"' in line}


def test_versions_side_by_side_answer_as_themselves_up_to_the_cap(store_copy: Path) -> None:
    second = add_shifted_version(store_copy, "lstm", 5.0)
    third = add_shifted_version(store_copy, "lstm", -5.0)
    service = start_service(store_copy, max_loaded_versions=2)
    try:
        with service.client() as client:
            base = "/v2/repository/models/lstm/versions"
            assert client.post(f"/v2/models/lstm/versions/{second}/infer", json=window_request(1)).status_code == 404
            assert client.post(f"{base}/{second}/load").status_code == 401  # admin only
            loaded = client.post(f"{base}/{second}/load", headers=ADMIN)
            assert loaded.status_code == 200, loaded.text
            answers = {}
            for path, rid in (("/v2/models/lstm", "u"), ("/v2/models/lstm/versions/1", "v1"),
                              (f"/v2/models/lstm/versions/{second}", "v2")):
                answer = client.post(f"{path}/infer", json=window_request(1, id=rid))
                assert answer.status_code == 200, answer.text
                answers[rid] = answer.json()
            assert [answers[r]["model_version"] for r in ("u", "v1", "v2")] == ["1", "1", second]
            assert answers["v2"]["outputs"][0]["data"] != answers["v1"]["outputs"][0]["data"]
            assert client.get(f"/v2/models/lstm/versions/{second}/ready").status_code == 200
            memory = _memory(client.get("/metrics").text)
            assert set(memory) == {"1", second} and all(v > 0 for v in memory.values())
            # the cap: two loaded, a third is refused until one is unloaded
            refused = client.post(f"{base}/{third}/load", headers=ADMIN)
            assert refused.status_code == 409 and "MITIGA_MAX_LOADED_VERSIONS" in refused.json()["error"]
            assert client.post(f"{base}/{second}/unload", headers=ADMIN).status_code == 200
            assert client.post(f"{base}/{third}/load", headers=ADMIN).status_code == 200
            assert set(_memory(client.get("/metrics").text)) == {"1", third}
            assert client.post(f"/v2/models/lstm/versions/{second}/infer", json=window_request(1)).status_code == 404
            # switching the unversioned routes to a version loaded beside takes it as it is
            assert client.post(f"/v2/repository/models/lstm/load?version={third}", headers=ADMIN).status_code == 200
            answer = client.post("/v2/models/lstm/infer", json=window_request(1, id="after"))
            assert answer.json()["model_version"] == third
            assert set(_memory(client.get("/metrics").text)) == {third}
        def events() -> dict[str, str]:  # published off the request path, in batches
            return {e.request_id: e.model_version for env in service.bus.messages(Topic.INFERENCE)
                    for e in decode_as(env, pb.InferenceEventBatch).events}

        published = wait_for(lambda: (lambda e: e if {"u", "v1", "v2", "after"} <= set(e) else None)(events()), 30,
                             "the four requests' events")
        assert {k: published[k] for k in ("u", "v1", "v2", "after")} == {"u": "1", "v1": "1", "v2": second,
                                                                          "after": third}
    finally:
        service.running.stop()
