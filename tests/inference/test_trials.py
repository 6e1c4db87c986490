"""Live trials on the inference service: the candidate on trial is loaded beside the champion from the model store
(at start-up, and on a rollout event); in shadow it predicts a copy of every unversioned request off the path, in
canary it answers a sticky share of them while the champion predicts off the path; both predictions are published
under the request's id. The off-path prediction never fails a request; the trial's end unloads the candidate."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from mitiga_core.events import Topic, decode_as, encode
from mitiga_core.pb.mitiga.v1 import events_pb2 as pb
from mitiga_core.promotion import Candidate, end_trial, start_trial
from mitiga_core.store import FilesystemModelStore
from tests.conftest import wait_for
from tests.inference.conftest import ADMIN, Service, start_service, window_request
from tests.inference.test_hot_swap import add_shifted_version

pytestmark = pytest.mark.slow


def _events(service: Service) -> list[pb.InferenceEvent]:
    return [e for env in service.bus.messages(Topic.INFERENCE) for e in decode_as(env, pb.InferenceEventBatch).events]


def _by_request(service: Service, ids: set[str]) -> dict[str, list[tuple[str, bool]]]:
    """Each request's published predictions as (version, shadow), once every request has two."""
    def ready() -> dict[str, list[tuple[str, bool]]] | None:
        found: dict[str, list[tuple[str, bool]]] = {}
        for e in _events(service):
            if e.request_id in ids:
                found.setdefault(e.request_id, []).append((e.model_version, e.shadow))
        return found if len(found) == len(ids) and all(len(v) == 2 for v in found.values()) else None
    return wait_for(ready, 30, "both predictions of every request")


def _metric(service: Service, name: str, **labels: str) -> float:
    with service.client() as client:
        text = client.get("/metrics").text
    want = [f'{k}="{v}"' for k, v in labels.items()]
    return sum(float(line.split()[-1]) for line in text.splitlines()
               if line.startswith(name + "{") and all(w in line for w in want))


def _announce(service: Service, event: pb.ModelRollout | None) -> None:
    assert event is not None
    service.bus.publish(Topic.ROLLOUT, encode(event, source="test", key=event.model_name))


def test_shadow_copies_every_request_off_the_path_until_the_trial_ends(store_copy: Path) -> None:
    candidate = add_shifted_version(store_copy, "lstm", 5.0)
    store = FilesystemModelStore(store_copy)
    start_trial(store, "lstm", Candidate(version=candidate, mode="shadow", champion="1"))
    service = start_service(store_copy)  # reads the trial from the store at start-up
    try:
        with service.client() as client:
            wait_for(lambda: _metric(service, "mitiga_inference_model_memory_bytes", version=candidate) or None, 60,
                     "the candidate loaded beside the champion")
            ids = {f"s{i}" for i in range(20)}
            for rid in sorted(ids):
                answer = client.post("/v2/models/lstm/infer", json=window_request(2, id=rid))
                assert answer.status_code == 200 and answer.json()["model_version"] == "1"  # the champion answers
            published = _by_request(service, ids)
            assert all(sorted(v) == [("1", False), (candidate, True)] for v in published.values())
            assert _metric(service, "mitiga_inference_shadow_predictions_total", version=candidate, outcome="ok") == 20
            # gathered over the linger and run together: far fewer model calls than requests
            calls = _metric(service, "mitiga_inference_batch_rows_count", version=candidate)
            assert 1 <= calls < 10, calls
            # versioned routes are never rerouted or copied
            client.post("/v2/models/lstm/versions/1/infer", json=window_request(1, id="pinned"))
            # the trial ends: the candidate is unloaded, requests are no longer copied
            _announce(service, end_trial(store, "lstm", candidate, reason="discarded"))
            wait_for(lambda: _metric(service, "mitiga_inference_model_memory_bytes", version=candidate) == 0 or None,
                     30, "the candidate unloaded")
            assert client.post("/v2/models/lstm/infer", json=window_request(1, id="after")).status_code == 200
            wait_for(lambda: {"after", "pinned"} <= {e.request_id for e in _events(service)} or None, 30, "events")
        assert Counter((e.request_id, e.model_version) for e in _events(service)
                       if e.request_id in ("after", "pinned")) == {("after", "1"): 1, ("pinned", "1"): 1}
    finally:
        service.running.stop()


def test_a_canary_answers_its_sticky_share_and_the_champion_predicts_beside_it(store_copy: Path) -> None:
    candidate = add_shifted_version(store_copy, "lstm", 5.0)
    store = FilesystemModelStore(store_copy)
    service = start_service(store_copy)
    try:
        _announce(service, start_trial(store, "lstm", Candidate(version=candidate, mode="canary", champion="1",
                                                                canary_percent=30.0)))
        with service.client() as client:
            def routed() -> bool | None:
                client.post("/v2/models/lstm/infer", json=window_request(1, parameters={"routing_key": "k1"}))
                return _metric(service, "mitiga_inference_trial_requests_total") > 0 or None
            wait_for(routed, 60, "the canary route")
            answered: dict[str, str] = {}
            n = 300
            for i in range(n):
                body = window_request(1, id=f"c{i}", parameters={"routing_key": f"user-{i}"})
                answer = client.post("/v2/models/lstm/infer", json=body)
                assert answer.status_code == 200, answer.text
                answered[f"user-{i}"] = answer.json()["model_version"]
            share = sum(v == candidate for v in answered.values()) / n
            assert abs(share - 0.30) < 4 * (0.3 * 0.7 / n) ** 0.5, share  # binomial, 4 sigma
            for key in ("user-1", "user-2", "user-3", "user-4"):  # sticky: a key meets the same version again
                body = window_request(1, parameters={"routing_key": key})
                assert client.post("/v2/models/lstm/infer", json=body).json()["model_version"] == answered[key]
            published = _by_request(service, {f"c{i}" for i in range(n)})
            for i in range(n):  # the answer as itself, the other version off the path
                mine = answered[f"user-{i}"]
                other = "1" if mine == candidate else candidate
                assert sorted(published[f"c{i}"]) == sorted([(mine, False), (other, True)])
            # the candidate unloaded under the trial (by hand): the off-path prediction is counted, no request fails
            assert client.post(f"/v2/repository/models/lstm/versions/{candidate}/unload",
                               headers=ADMIN).status_code == 200
            for i in range(40):
                body = window_request(1, parameters={"routing_key": f"user-{i}"})
                assert client.post("/v2/models/lstm/infer", json=body).json()["model_version"] == "1"
            wait_for(lambda: _metric(service, "mitiga_inference_shadow_predictions_total", outcome="not_loaded") > 0
                     or None, 10, "the off-path predictions counted as not made")
    finally:
        service.running.stop()


def test_past_the_off_path_queue_a_copy_is_dropped_and_counted_never_the_request(store_copy: Path) -> None:
    candidate = add_shifted_version(store_copy, "lstm", 5.0)
    start_trial(FilesystemModelStore(store_copy), "lstm", Candidate(version=candidate, mode="shadow", champion="1"))
    service = start_service(store_copy, max_shadow_in_flight=3, shadow_linger_ms=3000)
    try:
        with service.client() as client:
            wait_for(lambda: _metric(service, "mitiga_inference_model_memory_bytes", version=candidate) or None, 60,
                     "the candidate loaded beside the champion")
            for i in range(10):  # all within one linger: three are queued, seven dropped
                assert client.post("/v2/models/lstm/infer", json=window_request(1, id=f"q{i}")).status_code == 200
            assert _metric(service, "mitiga_inference_shadow_predictions_total", outcome="dropped") == 7
            wait_for(lambda: _metric(service, "mitiga_inference_shadow_predictions_total", outcome="ok") == 3 or None,
                     30, "the three queued copies made")
    finally:
        service.running.stop()
