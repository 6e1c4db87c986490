"""Admin endpoints: bearer token, upload of .keras files and bundles, load and unload."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mitiga_core.events import Topic
from tests.conftest import bundle_zip, wait_for
from tests.inference.conftest import ADMIN, service_on_a_copy

pytestmark = pytest.mark.slow
HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def plain_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("plain")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    subprocess.run([sys.executable, str(HERE / "make_plain_model.py"), str(out)], check=True, env=env)
    return out


@pytest.fixture(scope="module")
def admin_service(reference_store: Path, tmp_path_factory: pytest.TempPathFactory):
    yield from service_on_a_copy(reference_store, tmp_path_factory)


@pytest.fixture
def admin(admin_service):
    with admin_service.client() as c:
        yield c


def test_admin_needs_a_bearer_token(admin) -> None:
    r = admin.post("/v2/repository/models/lstm/unload")
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert admin.post("/v2/repository/models/lstm/unload", headers={"Authorization": "Basic abc"}).status_code == 401
    r = admin.post("/v2/repository/models/lstm/unload", headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 403 and "invalid" in r.json()["error"]
    assert admin.get("/v2/models/lstm/ready").status_code == 200  # nothing happened


def test_plain_keras_upload_serves_keras_predictions(admin_service, admin, plain_model: Path) -> None:
    data = (plain_model / "plain.keras").read_bytes()
    r = admin.post("/v2/repository/models/plain/upload", content=data, headers=ADMIN,
                   params={"features": "a,b,c"})
    assert r.status_code == 201, r.text
    assert r.json() == {"name": "plain", "version": "1"}
    meta = admin.get("/v2/models/plain").json()
    assert meta["inputs"][0]["shape"] == [-1, 3] and meta["parameters"]["features"] == ["a", "b", "c"]
    expected = np.load(plain_model / "expected.npz")
    body = {"inputs": [{"name": "features", "shape": [5, 3], "datatype": "FP32", "data": expected["x"].tolist()}]}
    out = admin.post("/v2/models/plain/infer", json=body).json()
    np.testing.assert_allclose(out["outputs"][0]["data"], expected["y"].reshape(-1), rtol=1e-5, atol=1e-6)
    assert admin_service.store.champion("plain") == "1"
    wait_for(lambda: any(e.key == "plain" for e in admin_service.bus.messages(Topic.ROLLOUT)), 30,
             "the upload's rollout event")  # the publisher sends from its own thread


def test_default_feature_names_and_explicit_scaler(admin, plain_model: Path) -> None:
    data = (plain_model / "plain.keras").read_bytes()
    scaler = json.dumps({"kind": "standard", "offset": [1.0], "scale": [2.0]})
    r = admin.post("/v2/repository/models/scaled/upload", content=data, headers=ADMIN,
                   params={"output_scaler": scaler})
    assert r.status_code == 201, r.text
    meta = admin.get("/v2/models/scaled").json()
    assert meta["parameters"]["features"] == ["f0", "f1", "f2"]
    expected = np.load(plain_model / "expected.npz")
    body = {"inputs": [{"name": "features", "shape": [5, 3], "datatype": "FP32", "data": expected["x"].tolist()}]}
    out = admin.post("/v2/models/scaled/infer", json=body).json()
    np.testing.assert_allclose(out["outputs"][0]["data"], expected["y"].reshape(-1) * 2 + 1, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("content", "params", "status", "needle"), [
    (b"this is not a model", {}, 422, "neither a .keras file nor a bundle"),
    (b"PK\x03\x04garbage-zip", {}, 422, "neither"),
    (None, {"features": "a,b"}, 422, "features: 2 names given"),
    (None, {"input_scaler": '{"kind": "minmax", "offset": [0], "scale": [0]}'}, 400, "input_scaler"),
    (None, {"task": "forecast", "features": "a,b"}, 422, "exactly one feature"),
])
def test_bad_uploads_register_nothing(admin_service, admin, plain_model: Path, content, params, status,
                                      needle) -> None:
    data = content if content is not None else (plain_model / "plain.keras").read_bytes()
    before = admin_service.store.list_versions("broken")
    r = admin.post("/v2/repository/models/broken/upload", content=data, headers=ADMIN, params=params)
    assert r.status_code == status, r.text  # 422: a bundle that cannot be what it says; 400: a bad parameter
    assert needle in r.json()["error"]
    assert admin_service.store.list_versions("broken") == before == []
    assert list(admin_service.store.root.glob("broken/.staging-*")) == []  # no half-written version left


def test_unsafe_lambda_model_is_refused(admin_service, admin, tmp_path: Path) -> None:
    import keras

    inputs = keras.Input(shape=(2,))
    model = keras.Model(inputs, keras.layers.Lambda(lambda t: t * 2)(inputs))
    model.save(tmp_path / "lambda.keras")
    r = admin.post("/v2/repository/models/unsafe/upload", content=(tmp_path / "lambda.keras").read_bytes(), headers=ADMIN)
    assert r.status_code == 422 and "could not be loaded" in r.json()["error"]
    assert admin_service.store.list_versions("unsafe") == []


def test_bundle_zip_upload_keeps_manifest_and_reference(admin_service, admin) -> None:
    bundle = bundle_zip(admin_service.store.path("air", "1"))
    r = admin.post("/v2/repository/models/air2/upload", content=bundle, headers=ADMIN)
    assert r.status_code == 201, r.text
    meta = admin.get("/v2/models/air2").json()
    assert meta["outputs"][0]["name"] == "CO(GT)" and meta["parameters"]["task"] == "regression"
    assert (admin_service.store.path("air2", "1") / "reference.npy").exists()


def test_a_rollback_serves_the_earlier_champion_and_tells_the_other_replicas(admin_service, admin) -> None:
    bundle = bundle_zip(admin_service.store.path("air", "1"))
    body = {"inputs": [{"name": "features", "shape": [1, 8], "datatype": "FP32", "data": [1.0] * 8}]}
    assert admin.post("/v2/repository/models/back/upload", content=bundle, headers=ADMIN).status_code == 201
    r = admin.post("/v2/repository/models/back/rollback", headers=ADMIN)
    assert r.status_code == 409 and "no earlier champion" in r.json()["error"]
    assert admin.post("/v2/repository/models/back/upload", content=bundle, headers=ADMIN).status_code == 201
    assert admin.post("/v2/models/back/infer", json=body).json()["model_version"] == "2"
    assert admin.post("/v2/repository/models/back/rollback").status_code == 401
    r = admin.post("/v2/repository/models/back/rollback", params={"version": "9"}, headers=ADMIN)
    assert r.status_code == 404 and "version" in r.json()["error"]
    assert admin_service.store.champion("back") == "2"  # a refused rollback changes nothing
    r = admin.post("/v2/repository/models/back/rollback", headers=ADMIN)
    assert r.status_code == 200, r.text
    assert r.json() == {"name": "back", "version": "1", "previous_version": "2"}
    assert admin.post("/v2/models/back/infer", json=body).json()["model_version"] == "1"  # served here at once
    assert admin_service.store.champion("back") == "1"
    assert admin_service.store.decisions("back")[-1] == {"rollback": True, "from": "2", "version": "1", "promote": True}
    from mitiga_core.events import decode_as
    from mitiga_core.pb.mitiga.v1 import events_pb2 as pb

    def announced() -> list[tuple[str, str, str]]:
        return [(e.version, e.previous_version, e.reason) for e in (
            decode_as(m, pb.ModelRollout) for m in admin_service.bus.messages(Topic.ROLLOUT) if m.key == "back")]

    wait_for(lambda: len(announced()) == 3, 30, "three rollout events")
    assert announced() == [("1", "", "upload"), ("2", "1", "upload"), ("1", "2", "rollback")]


def test_bad_model_name_and_empty_body(admin) -> None:
    r = admin.post("/v2/repository/models/bad name!/upload", content=b"x", headers=ADMIN)
    assert r.status_code == 400 and "name" in r.json()["error"]
    r = admin.post("/v2/repository/models/empty/upload", content=b"", headers=ADMIN)
    assert r.status_code == 400 and "empty" in r.json()["error"]


def test_upload_over_the_limit_is_413(admin) -> None:
    r = admin.post("/v2/repository/models/huge/upload", content=b"0" * (5 * 1024 * 1024), headers=ADMIN)
    assert r.status_code == 413


def test_unload_then_load(admin) -> None:
    assert admin.post("/v2/repository/models/air/unload", headers=ADMIN).json()["state"] == "UNAVAILABLE"
    features = 8
    body = {"inputs": [{"name": "features", "shape": [1, features], "datatype": "FP32", "data": [1.0] * features}]}
    r = admin.post("/v2/models/air/infer", json=body)
    assert r.status_code == 503 and "not loaded" in r.json()["error"]
    assert admin.get("/v2/health/ready").status_code == 503
    assert admin.post("/v2/repository/models/air/load", headers=ADMIN).json() == {"name": "air", "version": "1"}
    assert admin.post("/v2/models/air/infer", json=body).status_code == 200
    assert admin.post("/v2/repository/models/air/load", params={"version": "7"}, headers=ADMIN).status_code == 404


def test_admin_disabled_without_token(reference_store: Path, tmp_path: Path) -> None:
    import httpx

    from mitiga_core.bus import InMemoryBus
    from mitiga_core.store import FilesystemModelStore
    from mitiga_inference.app import create_app
    from mitiga_inference.settings import InferenceSettings
    from tests.conftest import serve

    settings = InferenceSettings(model_store_path=tmp_path, models=[])
    running = serve(create_app(settings, bus=InMemoryBus(), store=FilesystemModelStore(tmp_path)))
    try:
        r = httpx.post(f"{running.url}/v2/repository/models/x/upload", content=b"x", headers=ADMIN)
        assert r.status_code == 403 and "MITIGA_ADMIN_TOKEN" in r.json()["error"]
    finally:
        running.stop()
