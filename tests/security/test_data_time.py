"""Attack: date one's requests where the gate looks.

The retrainer orders labelled rows by their data time and the gate holds out the recent ones, so a client that
chooses ``parameters.data_time`` chooses where its ground truth falls. By default (``MITIGA_DATA_TIME_FROM=backfill``)
only a caller with a backfill token (or the admin token) may date its requests; an anonymous request is dated by its
arrival, and counted. Over REST and gRPC alike; the event names the caller."""

from __future__ import annotations

import shutil
import time
from typing import TYPE_CHECKING

import pytest

from mitiga_core.events import Topic, decode_as
from mitiga_core.pb.mitiga.v1 import events_pb2 as pb

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.inference.conftest import Service

pytestmark = pytest.mark.slow  # serves the reference models
DATED = {"data_time": "2002-06-03"}


@pytest.fixture(scope="module")
def service(reference_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    from tests.inference.conftest import start_service

    root = tmp_path_factory.mktemp("store")
    shutil.copytree(reference_store, root, dirs_exist_ok=True)
    svc = start_service(root, backfill_tokens={"etl": "etl-token"}, grpc_port=0, host="127.0.0.1")
    yield svc
    svc.running.stop()


def published(service: Service, request_id: str) -> pb.InferenceEvent:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for envelope in service.bus.messages(Topic.INFERENCE):
            for event in decode_as(envelope, pb.InferenceEventBatch).events:
                if event.request_id == request_id:
                    return event
        time.sleep(0.02)
    raise AssertionError(f"no event for {request_id}")


def test_an_anonymous_callers_data_time_is_not_honoured(service: Service) -> None:
    from tests.inference.conftest import window_request

    with service.client() as client:
        before = time.time()
        for rid, headers in (("anon", {}), ("forged", {"Authorization": "Bearer guessed"}),
                             ("etl", {"Authorization": "Bearer etl-token"}), ("admin", {"Authorization": "Bearer s3cret"})):
            answer = client.post("/v2/models/lstm/infer", json=window_request(1, id=rid, parameters=DATED),
                                 headers=headers)
            assert answer.status_code == 200, answer.text  # inference itself needs no credential
        metrics = client.get("/metrics").text
    for rid in ("anon", "forged"):
        event = published(service, rid)
        assert event.caller == "" and not event.HasField("data_time"), rid  # dated by its arrival
        assert event.time.ToDatetime().timestamp() >= before - 1
    for rid, caller in (("etl", "etl"), ("admin", "admin")):
        event = published(service, rid)
        assert event.caller == caller and event.data_time.ToDatetime().date().isoformat() == "2002-06-03"
    assert 'mitiga_inference_data_time_ignored_total{model="lstm"} 2.0' in metrics


def test_over_grpc_too(service: Service) -> None:
    import grpc

    from mitiga_inference.pb.inference import grpc_predict_v2_pb2 as oip
    from mitiga_inference.pb.inference import grpc_predict_v2_pb2_grpc as oip_grpc

    port = service.app.state.grpc.port
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = oip_grpc.GRPCInferenceServiceStub(channel)
        for rid, metadata in (("g-anon", ()), ("g-etl", (("authorization", "Bearer etl-token"),))):
            request = oip.ModelInferRequest(model_name="lstm", id=rid, inputs=[oip.ModelInferRequest.InferInputTensor(
                name="window", datatype="FP32", shape=[1, 50],
                contents=oip.InferTensorContents(fp32_contents=[20.0] * 50))])
            request.parameters["data_time"].string_param = "2002-06-03"
            stub.ModelInfer(request, metadata=metadata)
    assert not published(service, "g-anon").HasField("data_time")
    assert published(service, "g-etl").data_time.ToDatetime().date().isoformat() == "2002-06-03"
