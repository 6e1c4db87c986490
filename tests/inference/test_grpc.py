"""The OIP v2 gRPC transport against a real server on 127.0.0.1, compared with the REST answers of the same data
plane."""

from __future__ import annotations

import shutil
import time
from typing import TYPE_CHECKING

import grpc
import numpy as np
import pytest

from mitiga_core.events import Topic, decode_as
from mitiga_core.pb.mitiga.v1 import events_pb2 as pb
from mitiga_inference.pb.inference import grpc_predict_v2_pb2 as oip
from mitiga_inference.pb.inference import grpc_predict_v2_pb2_grpc as oip_grpc
from tests.inference.conftest import Service, start_service, window_request

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def served(reference_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, str]]:
    root = tmp_path_factory.mktemp("store")
    shutil.copytree(reference_store, root, dirs_exist_ok=True)
    service = start_service(root, grpc_port=0, host="127.0.0.1")
    yield service, f"127.0.0.1:{service.app.state.grpc.port}"
    service.running.stop()


@pytest.fixture
def stub(served: tuple[Service, str]) -> Iterator[oip_grpc.GRPCInferenceServiceStub]:
    with grpc.insecure_channel(served[1]) as channel:
        yield oip_grpc.GRPCInferenceServiceStub(channel)


def window_tensor(rows: int, *, raw: bool = False, id: str = "g-1") -> tuple[oip.ModelInferRequest, np.ndarray]:
    """The same window rows as the REST helper, as a gRPC request (typed contents or raw bytes)."""
    data = np.asarray(window_request(rows)["inputs"][0]["data"], np.float32)
    tensor = oip.ModelInferRequest.InferInputTensor(name="window", datatype="FP32", shape=[rows, 50])
    request = oip.ModelInferRequest(model_name="lstm", id=id)
    if raw:
        request.raw_input_contents.append(data.tobytes())
    else:
        tensor.contents.fp32_contents.extend(data.tolist())
    request.inputs.append(tensor)
    return request, data


def test_health_and_metadata(stub) -> None:
    assert stub.ServerLive(oip.ServerLiveRequest()).live is True
    assert stub.ServerReady(oip.ServerReadyRequest()).ready is True
    server = stub.ServerMetadata(oip.ServerMetadataRequest())
    assert server.name == "mitiga" and "model_repository" in server.extensions
    meta = stub.ModelMetadata(oip.ModelMetadataRequest(name="lstm"))
    assert [(t.name, t.datatype, list(t.shape)) for t in meta.inputs] == [("window", "FP32", [-1, 50])]
    assert list(meta.versions) == ["1"] and meta.outputs[0].name == "prediction"
    assert stub.ModelReady(oip.ModelReadyRequest(name="lstm", version="1")).ready is True
    with pytest.raises(grpc.RpcError) as err:
        stub.ModelMetadata(oip.ModelMetadataRequest(name="nope"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND and "nope" in err.value.details()


@pytest.mark.parametrize("raw", [False, True])
def test_infer_answers_as_rest_does(served: tuple[Service, str], stub, raw: bool) -> None:
    service, _ = served
    request, data = window_tensor(3, raw=raw, id=f"g-{raw}")
    request.parameters["data_time"].string_param = "2004-01-02"
    response = stub.ModelInfer(request)
    assert (response.model_name, response.model_version, response.id) == ("lstm", "1", f"g-{raw}")
    [output] = response.outputs
    assert (output.name, output.datatype, list(output.shape)) == ("prediction", "FP32", [3, 1])
    got = (np.frombuffer(response.raw_output_contents[0], "<f4") if raw
           else np.asarray(output.contents.fp32_contents, np.float32))
    assert len(response.raw_output_contents) == (1 if raw else 0)
    with service.client() as client:
        rest = client.post("/v2/models/lstm/infer", json=window_request(3)).json()
    np.testing.assert_allclose(got, rest["outputs"][0]["data"], rtol=1e-5)
    assert response.parameters["data_time"].string_param == "2004-01-02"
    assert np.isfinite(data).all()


def test_a_grpc_request_is_published_like_a_rest_one(served: tuple[Service, str], stub) -> None:
    service, _ = served
    before = len(service.bus.messages(Topic.INFERENCE))
    request, data = window_tensor(2)
    request.id = "grpc-event"
    response = stub.ModelInfer(request)

    def published() -> list:
        # Other tests' requests are published in the background too: wait for this one by its id.
        return [e for env in service.bus.messages(Topic.INFERENCE)[before:]
                for e in decode_as(env, pb.InferenceEventBatch).events if e.request_id == "grpc-event"]

    deadline = time.monotonic() + 10
    while not published() and time.monotonic() < deadline:
        time.sleep(0.02)
    [event] = published()
    np.testing.assert_allclose(event.inputs.data, data, rtol=1e-6)
    np.testing.assert_allclose(event.outputs.data, response.outputs[0].contents.fp32_contents, rtol=1e-6)
    with pytest.raises(grpc.RpcError) as err:  # an id is unique per model, over gRPC too
        stub.ModelInfer(request)
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS and "grpc-event" in err.value.details()


def _bad(change: str) -> oip.ModelInferRequest:
    request, data = window_tensor(2)
    if change == "no model":
        request.model_name = ""
    elif change == "unknown model":
        request.model_name = "ghost"
    elif change == "short data":
        del request.inputs[0].contents.fp32_contents[-1]
    elif change == "string datatype":
        request.inputs[0].datatype = "BYTES"
    elif change == "raw and contents":
        request.raw_input_contents.append(data.tobytes())
    elif change == "ragged raw":
        request.inputs[0].ClearField("contents")
        request.raw_input_contents.append(data.tobytes()[:-1])
    elif change == "no inputs":
        del request.inputs[:]
    elif change == "nan":
        request.inputs[0].contents.fp32_contents[0] = float("nan")
    return request


@pytest.mark.parametrize(("change", "code", "says"), [
    ("no model", grpc.StatusCode.INVALID_ARGUMENT, "model_name"),
    ("unknown model", grpc.StatusCode.NOT_FOUND, "ghost"),
    ("short data", grpc.StatusCode.INVALID_ARGUMENT, "needs 100 values, got 99"),
    ("string datatype", grpc.StatusCode.INVALID_ARGUMENT, "datatype 'BYTES'"),
    ("raw and contents", grpc.StatusCode.INVALID_ARGUMENT, "raw_input_contents or in contents"),
    ("ragged raw", grpc.StatusCode.INVALID_ARGUMENT, "not a whole number of FP32 values"),
    ("no inputs", grpc.StatusCode.INVALID_ARGUMENT, "inputs"),
    ("nan", grpc.StatusCode.INVALID_ARGUMENT, "NaN"),
])
def test_bad_requests_get_a_status_naming_the_field(served: tuple[Service, str], stub, change: str,
                                                    code: grpc.StatusCode, says: str) -> None:
    with pytest.raises(grpc.RpcError) as err:
        stub.ModelInfer(_bad(change))
    assert err.value.code() == code and says in err.value.details(), err.value.details()
    request, _ = window_tensor(1, id=f"after-{change}")
    assert stub.ModelInfer(request).outputs[0].shape == [1, 1]  # the server is unharmed
