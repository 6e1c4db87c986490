"""Reading and writing model bundles in a :class:`~mitiga_core.store.ModelStore`.

A version folder holds ``model.keras``, ``manifest.json``, and optionally ``reference.npy``
(training inputs for drift detection), ``training.npz`` (the training data, for retraining) and ``validation.npz``
(held-out inputs with the model's predictions and the truth: the detector fits its performance estimator on them).
Every array loads without pickle.
"""

from __future__ import annotations

import io
import json
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import ValidationError

from mitiga_core.bundle import safe
from mitiga_core.bundle.describe import check_model_matches, manifest_for_plain_model
from mitiga_core.bundle.manifest import ModelManifest
from mitiga_core.errors import BundleError

if TYPE_CHECKING:
    import keras

    from mitiga_core.store import ModelStore
    from mitiga_core.types import FloatArray

MODEL_FILE = "model.keras"
MANIFEST_FILE = "manifest.json"
REFERENCE_FILE = "reference.npy"
TRAINING_FILE = "training.npz"
VALIDATION_FILE = "validation.npz"


@dataclass
class TrainingData:
    """Training rows in original units: inputs, targets, and a date (ISO string) per row."""

    x: FloatArray
    y: FloatArray
    dates: np.ndarray[Any, np.dtype[np.str_]]
    sources: np.ndarray[Any, np.dtype[np.str_]] | None = None
    """Where each row came from (the request id of a labelled production row); None for the original data."""
    origins: np.ndarray[Any, np.dtype[np.str_]] | None = None
    """Who sent each row's ground truth (the feedback token's name; '' when unknown or for the original data)."""


@dataclass
class ValidationData:
    """Rows the model never trained on, in original units: its inputs, its predictions, and the truth."""

    x: FloatArray
    pred: FloatArray
    y: FloatArray


def load_keras(path: Path) -> keras.Model:
    """Load a ``.keras`` file with ``safe_mode=True``; any failure is a BundleError."""
    import keras

    try:
        model = keras.saving.load_model(path, safe_mode=True, compile=False)
    except Exception as exc:  # keras raises many kinds on a bad file
        raise BundleError(f"model file could not be loaded: {type(exc).__name__}: {exc}") from exc
    if not isinstance(model, keras.Model):
        raise BundleError("model file does not hold a Keras model")
    return model


def save_bundle(
    store: ModelStore,
    manifest: ModelManifest,
    model: keras.Model,
    reference: FloatArray | None = None,
    training: TrainingData | None = None,
    validation: ValidationData | None = None,
) -> ModelManifest:
    """Write a new version atomically and return its manifest, version filled in."""
    written: list[ModelManifest] = []

    def populate(folder: Path, version: str) -> None:
        rows = 0 if reference is None else len(reference)
        final = manifest.model_copy(update={"version": version, "reference_rows": rows})
        model.save(folder / MODEL_FILE)
        if reference is not None:
            np.save(folder / REFERENCE_FILE, np.asarray(reference, np.float32))
        if training is not None:
            # dates as fixed-width unicode: an object array would need pickle to load, which is never allowed
            np.savez(folder / TRAINING_FILE, x=training.x, y=training.y, dates=np.asarray(training.dates, dtype=str))
        if validation is not None:
            np.savez(folder / VALIDATION_FILE, x=np.asarray(validation.x, np.float32),
                     pred=np.asarray(validation.pred, np.float32), y=np.asarray(validation.y, np.float32))
        (folder / MANIFEST_FILE).write_text(final.model_dump_json(indent=2))
        written.append(final)

    store.write_version(manifest.name, populate)
    return written[-1]


def read_manifest(folder: Path) -> ModelManifest:
    try:
        return ModelManifest.model_validate_json((folder / MANIFEST_FILE).read_text())
    except (OSError, ValidationError) as exc:
        raise BundleError(f"invalid manifest in {folder.name}: {exc}") from exc


def read_reference(folder: Path) -> FloatArray | None:
    path = folder / REFERENCE_FILE
    return np.load(path).astype(np.float32) if path.exists() else None


def read_training(folder: Path) -> TrainingData | None:
    path = folder / TRAINING_FILE
    if not path.exists():
        return None
    with np.load(path) as data:
        return TrainingData(x=data["x"], y=data["y"], dates=data["dates"])


def read_validation(folder: Path) -> ValidationData | None:
    path = folder / VALIDATION_FILE
    if not path.exists():
        return None
    with np.load(path) as data:
        return ValidationData(x=data["x"], pred=data["pred"], y=data["y"])


def import_archive(store: ModelStore, name: str, data: bytes, *, max_unpacked_bytes: int = 1 << 30,
                   **plain: Any) -> ModelManifest:
    """Register an uploaded ``.keras`` file or a bundle zip (``model.keras`` + ``manifest.json`` [+ arrays]).

    Member sizes and array headers are checked before they are read (``safe.py``: at most ``max_unpacked_bytes``
    unpacked); the model is loaded (safe mode) and checked before anything is written; on any error nothing is
    registered.
    """
    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise BundleError("upload is neither a .keras file nor a bundle zip")
    with tempfile.TemporaryDirectory(prefix="mitiga-upload-") as tmp:
        folder = Path(tmp)
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = set(archive.namelist())
            if MANIFEST_FILE in names and MODEL_FILE in names:
                safe.check_zip(archive, max_unpacked_bytes, "bundle")
                for member in (MODEL_FILE, MANIFEST_FILE, REFERENCE_FILE, TRAINING_FILE, VALIDATION_FILE):
                    if member in names:
                        safe.extract(archive, member, folder / member, max_unpacked_bytes)
            else:
                (folder / MODEL_FILE).write_bytes(data)
        if not zipfile.is_zipfile(folder / MODEL_FILE):
            raise BundleError(f"{MODEL_FILE} is not a .keras (zip) file")
        with zipfile.ZipFile(folder / MODEL_FILE) as keras_zip:
            safe.check_zip(keras_zip, max_unpacked_bytes, MODEL_FILE)
        for arrays in (REFERENCE_FILE, TRAINING_FILE, VALIDATION_FILE):
            safe.check_arrays(folder / arrays)
        model = load_keras(folder / MODEL_FILE)
        if (folder / MANIFEST_FILE).exists():
            try:
                raw = json.loads((folder / MANIFEST_FILE).read_text())
                manifest = ModelManifest.model_validate({**raw, "name": name})
            except (ValueError, ValidationError) as exc:
                raise BundleError(f"invalid manifest: {exc}") from exc
            check_model_matches(manifest, model)
        else:
            manifest = manifest_for_plain_model(name, model, **plain)
        reference = read_reference(folder)
        training = read_training(folder)
        validation = read_validation(folder)
        columns = manifest.kind.reference_columns(manifest)
        if reference is not None and reference.shape[-1] != columns:
            raise BundleError(f"reference.npy has {reference.shape[-1]} columns; the manifest expects {columns}")
        if validation is not None and not (len(validation.x) == len(validation.pred) == len(validation.y)):
            raise BundleError("validation.npz: x, pred and y must have the same number of rows")
        return save_bundle(store, manifest, model, reference, training, validation)
