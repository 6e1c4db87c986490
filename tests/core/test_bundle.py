from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from mitiga_core.bundle import ModelManifest, Scaler, import_archive, read_manifest
from mitiga_core.errors import BundleError
from mitiga_core.store import FilesystemModelStore


def test_scaler_fits_transforms_and_inverts() -> None:
    data = np.array([[0.0, 10.0], [5.0, 20.0], [10.0, 30.0]], np.float32)
    mm = Scaler.fit("minmax", data)
    np.testing.assert_allclose(mm.transform(data), [[0, 0], [0.5, 0.5], [1, 1]])
    st = Scaler.fit("standard", data)
    np.testing.assert_allclose(st.transform(data).mean(axis=0), [0, 0], atol=1e-6)
    np.testing.assert_allclose(st.inverse(st.transform(data)), data, rtol=1e-6)
    assert Scaler.fit("minmax", np.ones((3, 1), np.float32)).scale == [1.0]  # constant column
    with pytest.raises(ValidationError, match="non-zero"):
        Scaler(kind="minmax", offset=[0.0], scale=[0.0])


@pytest.mark.parametrize(("fields", "needle"), [
    ({"task": "forecast", "features": ["a"]}, "positive window"),
    ({"task": "forecast", "features": ["a", "b"], "window": 5}, "exactly one feature"),
    ({"task": "regression", "features": ["a"], "window": 5}, "no window"),
    ({"task": "regression", "features": ["a", "a"]}, "unique"),
    ({"task": "regression", "features": []}, "must not be empty"),
    ({"task": "regression", "features": ["a"], "categorical": ["b"]}, "categorical names features"),
])
def test_manifest_validation(fields: dict[str, object], needle: str) -> None:
    with pytest.raises(ValidationError, match=needle):
        ModelManifest(name="m", **fields)  # type: ignore[arg-type]


def test_plain_forecaster_import_infers_the_window(tmp_path: Path) -> None:
    import keras

    inputs = keras.Input(shape=(7, 1))
    model = keras.Model(inputs, keras.layers.Dense(1)(keras.layers.Flatten()(inputs)))
    model.save(tmp_path / "f.keras")
    store = FilesystemModelStore(tmp_path / "store")
    manifest = import_archive(store, "fc", (tmp_path / "f.keras").read_bytes())
    assert manifest.task == "forecast" and manifest.window == 7 and manifest.features == ["value"]
    assert manifest.lineage.trigger == "import" and manifest.input_scaler.kind == "none"
    assert read_manifest(store.path("fc", "1")) == manifest


def test_a_model_with_several_inputs_is_described_by_name_and_one_with_several_outputs_refused(
        tmp_path: Path) -> None:
    import keras

    a, b = keras.Input(shape=(4, 1), name="prices"), keras.Input(shape=(3,), name="calendar")
    joined = keras.layers.Concatenate()([keras.layers.Flatten()(a), b])
    keras.Model([a, b], keras.layers.Dense(1)(joined)).save(tmp_path / "two.keras")
    store = FilesystemModelStore(tmp_path / "store")
    manifest = import_archive(store, "two", (tmp_path / "two.keras").read_bytes())
    assert [(i.name, i.shape) for i in manifest.inputs] == [("prices", [4, 1]), ("calendar", [3])]
    assert manifest.features[:5] == ["prices.0", "prices.1", "prices.2", "prices.3", "calendar.0"]
    x = np.arange(14, dtype=np.float32).reshape(2, 7)
    split = manifest.model_inputs(x)
    assert isinstance(split, dict) and split["prices"].shape == (2, 4, 1) and split["calendar"].tolist() == \
        [[4, 5, 6], [11, 12, 13]]
    with pytest.raises(BundleError, match="features: 2 names given for a model whose inputs"):
        import_archive(store, "named", (tmp_path / "two.keras").read_bytes(), features=["a", "b"])
    keras.Model([a, b], [keras.layers.Dense(1)(joined), keras.layers.Dense(1)(joined)]).save(tmp_path / "outs.keras")
    with pytest.raises(BundleError, match="several outputs"):
        import_archive(store, "outs", (tmp_path / "outs.keras").read_bytes())
    assert store.list_versions("outs") == [] and store.list_versions("named") == []


def _bundle_zip(tmp_path: Path, validation: dict[str, np.ndarray]) -> bytes:
    import io
    import zipfile

    import keras

    inputs = keras.Input(shape=(2,))
    keras.Model(inputs, keras.layers.Dense(1)(inputs)).save(tmp_path / "m.keras")
    manifest = ModelManifest(name="m", task="regression", features=["a", "b"], categorical=["b"])
    buffer = io.BytesIO()
    np.savez(arrays := io.BytesIO(), **validation)
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("model.keras", (tmp_path / "m.keras").read_bytes())
        archive.writestr("manifest.json", manifest.model_dump_json())
        archive.writestr("validation.npz", arrays.getvalue())
    return buffer.getvalue()


def test_a_bundle_keeps_its_validation_rows(tmp_path: Path) -> None:
    from mitiga_core.bundle import read_validation

    x, pred, y = np.ones((30, 2)), np.zeros((30, 1)), np.full((30, 1), 2.0)
    store = FilesystemModelStore(tmp_path / "store")
    manifest = import_archive(store, "m", _bundle_zip(tmp_path, {"x": x, "pred": pred, "y": y}))
    assert manifest.categorical == ["b"]
    validation = read_validation(store.path("m", manifest.version))
    assert validation is not None and validation.x.shape == (30, 2) and float(validation.y[0, 0]) == 2.0


def test_validation_rows_of_different_lengths_are_refused(tmp_path: Path) -> None:
    store = FilesystemModelStore(tmp_path / "store")
    bad = {"x": np.ones((30, 2)), "pred": np.zeros((29, 1)), "y": np.zeros((30, 1))}
    with pytest.raises(BundleError, match="same number of rows"):
        import_archive(store, "m", _bundle_zip(tmp_path, bad))
    assert store.list_versions("m") == []


def test_the_reference_error_is_the_validation_error_else_the_gates_holdout() -> None:
    from mitiga_core.bundle import TrainingInfo

    assert TrainingInfo(metrics={"val_mae": 2.0, "holdout_mae": 3.0}).reference_error("mae") == 2.0
    assert TrainingInfo(metrics={"holdout_mae": 3.0}).reference_error("mae") == 3.0
    assert TrainingInfo(metrics={"val_mae": 0.0}).reference_error("mae") is None
