"""Open Inference Protocol v2 REST types, converted at the edge to and from numpy arrays.

Only this module knows the wire format; the data plane works on arrays in original units.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from mitiga_core.errors import InvalidInput

if TYPE_CHECKING:
    from mitiga_core.bundle import ModelManifest
    from mitiga_core.types import FloatArray

NUMERIC_DATATYPES = frozenset({
    "FP16", "FP32", "FP64", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64",
})


MAX_DIMENSIONS = 8
MAX_DIMENSION = 2**31 - 1

Parameters = dict[str, str | bool | int | float]
"""OIP parameters: each value a string, a number or a boolean (no nesting, so nothing deep can be echoed back)."""


class RequestInput(BaseModel):
    name: str = Field(min_length=1)
    shape: list[int] = Field(min_length=1, max_length=MAX_DIMENSIONS)
    datatype: str
    parameters: Parameters | None = None
    data: list[Any]


class RequestOutput(BaseModel):
    name: str
    parameters: Parameters | None = None


class InferenceRequest(BaseModel):
    id: str | None = Field(default=None, max_length=256)
    parameters: Parameters | None = None
    inputs: list[RequestInput] = Field(min_length=1)
    outputs: list[RequestOutput] | None = None


class ResponseOutput(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    data: list[float]


class InferenceResponse(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    model_name: str
    model_version: str | None = None
    id: str
    parameters: dict[str, Any] | None = None
    outputs: list[ResponseOutput]


class MetadataTensor(BaseModel):
    name: str
    datatype: str
    shape: list[int]


class MetadataModelResponse(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[MetadataTensor]
    outputs: list[MetadataTensor]
    parameters: dict[str, Any] = Field(default_factory=dict)


FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]


class FeedbackItem(BaseModel):
    request_id: str = Field(min_length=1, max_length=256)
    ground_truth: list[FiniteFloat] = Field(min_length=1)


class FeedbackRequest(BaseModel):
    """Ground truth for one request (``request_id`` + ``ground_truth``) or many (``items``)."""

    items: list[FeedbackItem] = Field(min_length=1, max_length=10_000)

    @model_validator(mode="before")
    @classmethod
    def _single(cls, data: Any) -> Any:
        if isinstance(data, dict) and "items" not in data and "request_id" in data:
            return {"items": [data]}
        return data


def _tensor(t: RequestInput) -> FloatArray:
    where = f"input {t.name!r}"
    if t.datatype not in NUMERIC_DATATYPES:
        raise InvalidInput(f"{where}: datatype {t.datatype!r} is not supported; send FP32 (or another numeric type)")
    if any(d < 1 or d > MAX_DIMENSION for d in t.shape):
        raise InvalidInput(f"{where}: shape {t.shape}: every dimension must be between 1 and {MAX_DIMENSION}")
    try:
        arr = np.asarray(t.data)
    except ValueError as exc:
        raise InvalidInput(f"{where}: data is ragged: {exc}") from exc
    if arr.dtype.kind not in "biuf":
        raise InvalidInput(f"{where}: data must be numbers for datatype {t.datatype}")
    expected = math.prod(t.shape)
    if arr.size != expected:
        raise InvalidInput(f"{where}: shape {t.shape} needs {expected} values, got {arr.size}")
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all():
            raise InvalidInput(f"{where}: data contains NaN or infinity")
        if t.datatype[0] in "IU" and not np.all(arr == np.round(arr)):
            raise InvalidInput(f"{where}: datatype {t.datatype} needs whole numbers")
    with np.errstate(over="ignore"):  # an overflow is found just below, as a value
        out = arr.reshape(t.shape).astype(np.float32)
    if arr.dtype.kind == "f" and not np.isfinite(out).all():  # finite in float64, too large for the model's FP32
        raise InvalidInput(f"{where}: data has values beyond the FP32 range (±3.4e38) the model computes in")
    return out


def decode_inputs(request: InferenceRequest, manifest: ModelManifest) -> FloatArray:
    """The request's inputs as one (rows, columns) array in the manifest's column order."""
    if manifest.task == "forecast":
        return _decode_forecast(request, manifest)
    return _decode_tabular(request, manifest)


def _decode_forecast(request: InferenceRequest, manifest: ModelManifest) -> FloatArray:
    window = manifest.window or 1
    if len(request.inputs) != 1 or request.inputs[0].name != manifest.input_name:
        names = [i.name for i in request.inputs]
        raise InvalidInput(f"expected one input named {manifest.input_name!r}, got {names}")
    t = request.inputs[0]
    arr = _tensor(t)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim != 2 or arr.shape[1] != window:
        raise InvalidInput(f"input {t.name!r}: shape {t.shape} does not match [-1, {window}] (or [-1, {window}, 1])")
    return arr


def _decode_tabular(request: InferenceRequest, manifest: ModelManifest) -> FloatArray:
    features = manifest.features
    by_name = {t.name: t for t in request.inputs}
    if len(by_name) != len(request.inputs):
        raise InvalidInput("input names must be unique")
    if manifest.input_name in by_name:
        if len(request.inputs) != 1:
            raise InvalidInput(f"send either one input {manifest.input_name!r} or one input per feature, not both")
        t = by_name[manifest.input_name]
        arr = _tensor(t)
        if arr.ndim != 2 or arr.shape[1] != len(features):
            raise InvalidInput(f"input {t.name!r}: shape {t.shape} does not match [-1, {len(features)}]")
        return arr
    unknown = sorted(set(by_name) - set(features))
    if unknown:
        raise InvalidInput(f"unknown inputs {unknown}; expected {manifest.input_name!r} or the features {features}")
    missing = [f for f in features if f not in by_name]
    if missing:
        raise InvalidInput(f"missing inputs {missing}")
    columns = []
    for name in features:
        t = by_name[name]
        col = _tensor(t)
        if col.ndim == 2 and col.shape[1] == 1:
            col = col[:, 0]
        if col.ndim != 1:
            raise InvalidInput(f"input {name!r}: shape {t.shape} does not match [-1] or [-1, 1]")
        columns.append(col)
    if len({len(c) for c in columns}) != 1:
        raise InvalidInput(f"inputs have different row counts: {[len(c) for c in columns]}")
    return np.stack(columns, axis=1)


def encode_outputs(
    outputs: FloatArray, manifest: ModelManifest, requested: list[RequestOutput] | None
) -> list[ResponseOutput]:
    width = outputs.shape[1]
    names = manifest.outputs if len(manifest.outputs) == width else [f"output_{i}" for i in range(width)]
    wanted = [o.name for o in requested] if requested else names
    unknown = sorted(set(wanted) - set(names))
    if unknown:
        raise InvalidInput(f"unknown outputs requested {unknown}; this model returns {names}")
    return [
        ResponseOutput(name=name, shape=[len(outputs), 1], datatype="FP32", data=outputs[:, names.index(name)].tolist())
        for name in wanted
    ]


def metadata(manifest: ModelManifest, versions: list[str]) -> MetadataModelResponse:
    inputs = [MetadataTensor(name=manifest.input_name, datatype="FP32", shape=manifest.input_shape)]
    outputs = [MetadataTensor(name=name, datatype="FP32", shape=[-1, 1]) for name in manifest.outputs]
    return MetadataModelResponse(
        name=manifest.name, versions=versions, platform="tensorflow_keras", inputs=inputs, outputs=outputs,
        parameters={"task": manifest.task, "features": manifest.features, "window": manifest.window,
                    "version": manifest.version, "training": manifest.training.model_dump()},
    )
