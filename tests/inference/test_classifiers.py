"""Classifiers through the inference service, as a team would bring them: a plain ``.keras`` softmax or sigmoid
model uploads as what it is (its task read from its last layer, its class names given or defaulted), answers its
probabilities and its label over REST (JSON and binary), gRPC and tritonclient, with Triton's classification
extension, equal to Keras's own predictions; its feedback is a class by name or index, and anything else is a 400
naming the field. A declaration that does not fit the model is refused with the reason."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from mitiga_core.events import Topic, decode_as
from mitiga_core.pb.mitiga.v1 import events_pb2 as pb
from tests.inference.conftest import ADMIN, Service, start_service

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
CLASSES = ["low", "mid", "high"]


def _model(tmp: Path, name: str, units: int, activation: str) -> tuple[bytes, Any]:
    import keras

    keras.utils.set_random_seed(3)
    inputs = keras.Input(shape=(4,))
    hidden = keras.layers.Dense(8, activation="relu")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(units, activation=activation)(hidden))
    path = tmp / f"{name}.keras"
    model.save(path)
    return path.read_bytes(), model


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[bytes, Any]]:
    tmp = tmp_path_factory.mktemp("classifiers")
    return {"softmax": _model(tmp, "softmax", 3, "softmax"), "sigmoid": _model(tmp, "sigmoid", 1, "sigmoid"),
            "linear": _model(tmp, "linear", 3, None), "softmax2": _model(tmp, "softmax2", 2, "softmax")}


@pytest.fixture(scope="module")
def served(models: dict[str, tuple[bytes, Any]], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    service = start_service(tmp_path_factory.mktemp("store"), grpc_port=0, host="127.0.0.1")
    with service.client() as client:
        answer = client.post("/v2/repository/models/quality/upload", content=models["softmax"][0], headers=ADMIN,
                             params={"classes": ",".join(CLASSES)})
        assert answer.status_code == 201, answer.text
        answer = client.post("/v2/repository/models/alarm/upload", content=models["sigmoid"][0], headers=ADMIN)
        assert answer.status_code == 201, answer.text
    yield service
    service.running.stop()


ROWS = np.random.default_rng(5).normal(size=(6, 4)).astype(np.float32)


def _infer(service: Service, model: str, body: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    body = body or {"inputs": [{"name": "features", "shape": [6, 4], "datatype": "FP32",
                                "data": ROWS.reshape(-1).tolist()}], **extra}
    with service.client() as client:
        answer = client.post(f"/v2/models/{model}/infer", json=body)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def test_a_softmax_model_uploads_as_multiclass_with_its_classes(served: Service) -> None:
    with served.client() as client:
        meta = client.get("/v2/models/quality").json()
    assert meta["parameters"]["task"] == "multiclass" and meta["parameters"]["classes"] == CLASSES
    assert meta["outputs"] == [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]},
                               {"name": "label", "datatype": "BYTES", "shape": [-1]}]
    with served.client() as client:
        binary = client.get("/v2/models/alarm").json()
    assert binary["parameters"]["task"] == "binary" and binary["parameters"]["classes"] == ["0", "1"]


def test_rest_answers_equal_keras_probabilities_and_the_label(served: Service,
                                                                 models: dict[str, tuple[bytes, Any]]) -> None:
    expected = models["softmax"][1].predict(ROWS, verbose=0)
    outputs = {o["name"]: o for o in _infer(served, "quality")["outputs"]}
    assert outputs["probabilities"]["shape"] == [6, 3] and outputs["label"]["datatype"] == "BYTES"
    np.testing.assert_allclose(np.asarray(outputs["probabilities"]["data"]).reshape(6, 3), expected, rtol=1e-5,
                               atol=1e-6)
    assert outputs["label"]["data"] == [CLASSES[i] for i in expected.argmax(axis=1)]
    sigmoid = models["sigmoid"][1].predict(ROWS, verbose=0)
    alarm = {o["name"]: o for o in _infer(served, "alarm")["outputs"]}
    probs = np.asarray(alarm["probabilities"]["data"]).reshape(6, 2)
    np.testing.assert_allclose(probs[:, 1:], sigmoid, rtol=1e-5, atol=1e-6)
    assert alarm["label"]["data"] == [str(int(p > 0.5)) for p in sigmoid.reshape(-1)]


def test_the_classification_extension_answers_the_top_classes(served: Service,
                                                                models: dict[str, tuple[bytes, Any]]) -> None:
    expected = models["softmax"][1].predict(ROWS, verbose=0)
    answer = _infer(served, "quality", outputs=[{"name": "probabilities", "parameters": {"classification": 2}}])
    [top] = answer["outputs"]
    assert top["datatype"] == "BYTES" and top["shape"] == [6, 2]
    first = [s.split(":") for s in top["data"][::2]]
    assert [int(i) for _, i, _ in first] == expected.argmax(axis=1).tolist()
    assert [label for _, _, label in first] == [CLASSES[i] for i in expected.argmax(axis=1)]
    np.testing.assert_allclose([float(v) for v, _, _ in first], expected.max(axis=1), atol=1e-5)
    with served.client() as client:
        bad = client.post("/v2/models/quality/infer", json={
            "inputs": [{"name": "features", "shape": [6, 4], "datatype": "FP32", "data": ROWS.reshape(-1).tolist()}],
            "outputs": [{"name": "probabilities", "parameters": {"classification": 0}}]})
    assert bad.status_code == 400 and "classification" in bad.json()["error"]


def test_tritonclient_http_reads_the_label_in_binary_and_classifies(served: Service,
                                                                   models: dict[str, tuple[bytes, Any]]) -> None:
    import tritonclient.http as httpclient

    expected = models["softmax"][1].predict(ROWS, verbose=0)
    tensor = httpclient.InferInput("features", [6, 4], "FP32")
    tensor.set_data_from_numpy(ROWS)
    client = httpclient.InferenceServerClient(url=served.url.removeprefix("http://"))
    try:
        result = client.infer("quality", [tensor])  # binary in and out, tritonclient's defaults
        top = client.infer("quality", [tensor], outputs=[httpclient.InferRequestedOutput("probabilities",
                                                                                          class_count=1)])
    finally:
        client.close()
    np.testing.assert_allclose(result.as_numpy("probabilities"), expected, rtol=1e-5, atol=1e-6)
    assert [v.decode() for v in result.as_numpy("label")] == [CLASSES[i] for i in expected.argmax(axis=1)]
    assert [row[0].decode().split(":")[2] for row in top.as_numpy("probabilities")] == \
        [CLASSES[i] for i in expected.argmax(axis=1)]


def test_grpc_and_tritonclient_grpc_answer_the_same(served: Service, models: dict[str, tuple[bytes, Any]]) -> None:
    expected = models["softmax"][1].predict(ROWS, verbose=0)
    done = subprocess.run([sys.executable, "-m", "tests.inference.triton_classify_probe",
                           f"127.0.0.1:{served.app.state.grpc.port}", "quality", json.dumps(ROWS.tolist())],
                          capture_output=True, text=True, timeout=120, check=False, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    seen = json.loads(done.stdout.splitlines()[-1])
    assert seen["outputs"] == [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]},
                               {"name": "label", "datatype": "BYTES", "shape": [-1]}]
    np.testing.assert_allclose(np.asarray(seen["probabilities"]), expected, rtol=1e-5, atol=1e-6)
    assert seen["label"] == [CLASSES[i] for i in expected.argmax(axis=1)]
    assert [row[0].split(":")[2] for row in seen["top"]] == [CLASSES[i] for i in expected.argmax(axis=1)]
    assert [len(row) for row in seen["top"]] == [2] * 6


def test_feedback_is_a_class_by_name_or_index_and_anything_else_is_a_400(served: Service) -> None:
    body = {"id": "q-1", "inputs": [{"name": "features", "shape": [2, 4], "datatype": "FP32",
                                     "data": ROWS[:2].reshape(-1).tolist()}]}
    _infer(served, "quality", body)
    cursor = len(served.bus.messages(Topic.FEEDBACK))
    with served.client() as client:
        for truth, status, needle in (
                (["high", "extreme"], 400, "unknown class 'extreme'; the classes are ['low', 'mid', 'high']"),
                ([0, 1, 2], 400, "3 values for request 'q-1', which takes 2"),
                (["low"] * 6, 400, "6 values"),
                ([0.5, 1], 400, "neither a class name nor a class index"),
                ([True, 1], 422, "ground_truth")):  # not a number, a name or an index: the schema refuses it
            answer = client.post("/v2/models/quality/feedback", json={"request_id": "q-1", "ground_truth": truth})
            assert answer.status_code == status, (truth, answer.text)
            assert needle in json.dumps(answer.json()), (truth, answer.text)
        answer = client.post("/v2/models/quality/feedback", json={"request_id": "q-1", "ground_truth": ["high", 0]})
        assert answer.status_code == 202, answer.text
        regression_truth = client.post("/v2/models/alarm/feedback",
                                       json={"request_id": "any", "ground_truth": ["maybe"]})
    assert regression_truth.status_code == 400 and "unknown class 'maybe'" in regression_truth.json()["error"]
    events = [decode_as(env, pb.FeedbackEvent) for env in served.bus.messages(Topic.FEEDBACK)[cursor:]]
    assert [list(item.ground_truth) for e in events for item in e.items] == [[2.0, 0.0]]


@pytest.mark.parametrize(("model", "params", "needle"), [
    ("softmax", {"task": "binary"}, "task 'binary': the model must end in one sigmoid unit or two softmax units"),
    ("linear", {"task": "multiclass"}, "must end in a softmax layer"),
    ("softmax", {"classes": "a,b"}, "classes: 2 names given for a model with 3 classes"),
    ("sigmoid", {"task": "multiclass"}, "ends in sigmoid"),
])
def test_a_declaration_that_does_not_fit_the_model_is_a_422_naming_it(
        served: Service, models: dict[str, tuple[bytes, Any]], model: str, params: dict[str, str],
        needle: str) -> None:
    with served.client() as client:
        answer = client.post("/v2/repository/models/wrong/upload", content=models[model][0], headers=ADMIN,
                             params=params)
        assert answer.status_code == 422, answer.text  # a bundle that cannot be what it says: as for any bundle
        assert needle in answer.json()["error"]
        assert client.get("/v2/models/wrong").status_code == 404  # nothing registered


def test_a_model_whose_outputs_are_not_probabilities_serves_as_what_it_is(
        served: Service, models: dict[str, tuple[bytes, Any]]) -> None:
    """Three linear outputs are a three-output regression: its metadata says so, and so does its answer."""
    with served.client() as client:
        long = client.post("/v2/repository/models/three/upload", content=models["linear"][0], headers=ADMIN,
                           params={"units": "x" * 33})
        assert long.status_code == 422 and "units" in long.json()["error"]
        assert client.post("/v2/repository/models/three/upload", content=models["linear"][0],
                           headers=ADMIN, params={"units": "kWh"}).status_code == 201
        meta = client.get("/v2/models/three").json()
        two = client.post("/v2/repository/models/pair/upload", content=models["softmax2"][0], headers=ADMIN,
                          params={"task": "binary", "classes": "no,yes"})
        assert two.status_code == 201, two.text
    assert meta["parameters"]["task"] == "regression" and meta["parameters"]["units"] == "kWh"
    names = [o["name"] for o in meta["outputs"]]
    assert names == ["output_0", "output_1", "output_2"]
    assert [o["name"] for o in _infer(served, "three")["outputs"]] == names
    pair = {o["name"]: o for o in _infer(served, "pair")["outputs"]}
    assert pair["probabilities"]["shape"] == [6, 2] and set(pair["label"]["data"]) <= {"no", "yes"}
