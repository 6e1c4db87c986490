"""A Keras functional model with two named inputs (a window of prices and calendar features) uploads as a plain
``.keras`` file, lists both inputs in its metadata, and serves one OIP tensor per model input by name (or one per
feature of an input), equal to Keras's own predictions over REST and gRPC; a missing or an unknown input is a 400
naming it. Its events carry the flat rows, features named ``input.feature``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import numpy as np
import pytest

from mitiga_core.events import Topic, decode_as
from mitiga_core.pb.mitiga.v1 import events_pb2 as pb
from mitiga_inference.pb.inference import grpc_predict_v2_pb2 as oip
from mitiga_inference.pb.inference import grpc_predict_v2_pb2_grpc as oip_grpc
from tests.conftest import wait_for
from tests.inference.conftest import ADMIN, Service, start_service

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.slow

PRICES = np.random.default_rng(2).normal(size=(5, 10, 1)).astype(np.float32)
CALENDAR = np.random.default_rng(3).integers(0, 7, size=(5, 3)).astype(np.float32)


def two_input_model(path: Path) -> Any:
    import keras

    keras.utils.set_random_seed(4)
    prices, calendar = keras.Input(shape=(10, 1), name="prices"), keras.Input(shape=(3,), name="calendar")
    joined = keras.layers.Concatenate()([keras.layers.Flatten()(prices), calendar])
    model = keras.Model({"prices": prices, "calendar": calendar},
                        keras.layers.Dense(1)(keras.layers.Dense(8, activation="relu")(joined)))
    model.save(path)
    return model


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, Any]]:
    tmp = tmp_path_factory.mktemp("two")
    model = two_input_model(tmp / "two.keras")
    service = start_service(tmp / "store", grpc_port=0, host="127.0.0.1")
    with service.client() as client:
        answer = client.post("/v2/repository/models/two/upload", content=(tmp / "two.keras").read_bytes(),
                             headers=ADMIN)
        assert answer.status_code == 201, answer.text
    yield service, model
    service.running.stop()


def _tensor(name: str, values: np.ndarray) -> dict[str, Any]:
    return {"name": name, "shape": list(values.shape), "datatype": "FP32", "data": values.reshape(-1).tolist()}


def _post(service: Service, inputs: list[dict[str, Any]], **extra: Any) -> Any:
    with service.client() as client:
        return client.post("/v2/models/two/infer", json={"inputs": inputs, **extra})


def test_metadata_lists_every_input_with_its_shape(served: tuple[Service, Any]) -> None:
    service, _ = served
    with service.client() as client:
        meta = client.get("/v2/models/two").json()
    assert {(t["name"], tuple(t["shape"])) for t in meta["inputs"]} == {("prices", (-1, 10, 1)),
                                                                       ("calendar", (-1, 3))}
    assert "calendar.2" in meta["parameters"]["features"] and meta["parameters"]["task"] == "regression"


def test_rest_and_grpc_answers_equal_keras_and_events_carry_the_flat_rows(served: tuple[Service, Any]) -> None:
    service, model = served
    expected = model.predict({"prices": PRICES, "calendar": CALENDAR}, verbose=0)
    before = len(service.bus.messages(Topic.INFERENCE))
    answer = _post(service, [_tensor("calendar", CALENDAR), _tensor("prices", PRICES)], id="two-1")
    assert answer.status_code == 200, answer.text
    np.testing.assert_allclose(np.asarray(answer.json()["outputs"][0]["data"]).reshape(-1, 1), expected, rtol=1e-5,
                               atol=1e-5)
    flat = _post(service, [_tensor("prices", PRICES.reshape(5, 10)), _tensor("calendar", CALENDAR)])
    per_feature = _post(service, [_tensor("prices", PRICES)] + [
        _tensor(f"calendar.{j}", CALENDAR[:, j]) for j in range(3)])
    for other in (flat, per_feature):
        assert other.status_code == 200, other.text
        assert other.json()["outputs"][0]["data"] == answer.json()["outputs"][0]["data"]
    with grpc.insecure_channel(f"127.0.0.1:{service.app.state.grpc.port}") as channel:
        request = oip.ModelInferRequest(model_name="two")
        for name, values in (("prices", PRICES), ("calendar", CALENDAR)):
            request.inputs.add(name=name, datatype="FP32", shape=list(values.shape))
            request.raw_input_contents.append(values.tobytes())
        reply = oip_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=30)
    np.testing.assert_allclose(np.frombuffer(reply.raw_output_contents[0], np.float32).reshape(-1, 1), expected,
                               rtol=1e-5, atol=1e-5)

    def published() -> list[pb.InferenceEvent]:
        return [e for env in service.bus.messages(Topic.INFERENCE)[before:]
                for e in decode_as(env, pb.InferenceEventBatch).events if e.request_id == "two-1"]

    events = wait_for(published, 10, "the inference event")
    assert list(events[0].inputs.shape) == [5, 13]
    names = list(events[0].feature_names)  # each input's features together, in the model's order of its inputs
    row = np.asarray(events[0].inputs.data, np.float32).reshape(5, 13)
    np.testing.assert_array_equal(row[:, [names.index(f"prices.{j}") for j in range(10)]], PRICES.reshape(5, 10))
    np.testing.assert_array_equal(row[:, [names.index(f"calendar.{j}") for j in range(3)]], CALENDAR)


@pytest.mark.parametrize(("inputs", "needle"), [
    ([_tensor("prices", PRICES)], "missing input 'calendar' (shape [-1, 3], or one tensor per feature"),
    ([_tensor("prices", PRICES), _tensor("calendar", CALENDAR), _tensor("weather", CALENDAR)],
     "unknown inputs ['weather']; this model takes the inputs"),
    ([_tensor("prices", PRICES[:, :5]), _tensor("calendar", CALENDAR)], "input 'prices': shape [5, 5, 1]"),
    ([_tensor("prices", PRICES[:3]), _tensor("calendar", CALENDAR)], "different row counts"),
])
def test_a_missing_or_unknown_input_is_a_400_naming_it(served: tuple[Service, Any], inputs: list[dict[str, Any]],
                                                       needle: str) -> None:
    answer = _post(served[0], inputs)
    assert answer.status_code == 400 and needle in answer.json()["error"], answer.text


def test_tritonclient_sends_each_input_by_name(served: tuple[Service, Any]) -> None:
    import tritonclient.http as httpclient

    service, model = served
    expected = model.predict({"prices": PRICES, "calendar": CALENDAR}, verbose=0)
    tensors = []
    for name, values in (("prices", PRICES), ("calendar", CALENDAR)):
        tensor = httpclient.InferInput(name, list(values.shape), "FP32")
        tensor.set_data_from_numpy(values)  # binary, tritonclient's default
        tensors.append(tensor)
    client = httpclient.InferenceServerClient(url=service.url.removeprefix("http://"))
    try:
        meta = client.get_model_metadata("two")
        result = client.infer("two", tensors)
    finally:
        client.close()
    assert {t["name"] for t in meta["inputs"]} == {"prices", "calendar"}
    np.testing.assert_allclose(result.as_numpy("prediction"), expected, rtol=1e-5, atol=1e-5)
