"""Between the request's tensors and the model: the inputs as one (rows, columns) float32 array in the manifest's
column order, and the model's outputs as the response's tensors. Transport-neutral (:mod:`tensors`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from mitiga_core.errors import InvalidInput
from mitiga_inference.tensors import InferRequest, RequestedOutput, Tensor

if TYPE_CHECKING:
    from mitiga_core.bundle import ModelManifest
    from mitiga_core.types import FloatArray


def _float32(t: Tensor) -> FloatArray:
    """The tensor's values as the model computes in: finite float32 (whole numbers for an integer datatype)."""
    where, arr = f"input {t.name!r}", t.data
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all():
            raise InvalidInput(f"{where}: data contains NaN or infinity")
        if t.datatype[0] in "IU" and not np.all(arr == np.round(arr)):
            raise InvalidInput(f"{where}: datatype {t.datatype} needs whole numbers")
    with np.errstate(over="ignore"):  # an overflow is found just below, as a value
        out = arr.astype(np.float32)
    if arr.dtype.kind == "f" and not np.isfinite(out).all():  # finite in float64, too large for the model's FP32
        raise InvalidInput(f"{where}: data has values beyond the FP32 range (±3.4e38) the model computes in")
    return out


def decode_inputs(request: InferRequest, manifest: ModelManifest) -> FloatArray:
    """The request's inputs as one (rows, columns) array in the manifest's column order."""
    if manifest.task == "forecast":
        return _decode_forecast(request, manifest)
    return _decode_tabular(request, manifest)


def _decode_forecast(request: InferRequest, manifest: ModelManifest) -> FloatArray:
    window = manifest.window or 1
    if len(request.inputs) != 1 or request.inputs[0].name != manifest.input_name:
        names = [i.name for i in request.inputs]
        raise InvalidInput(f"expected one input named {manifest.input_name!r}, got {names}")
    t = request.inputs[0]
    arr = _float32(t)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim != 2 or arr.shape[1] != window:
        raise InvalidInput(f"input {t.name!r}: shape {t.shape} does not match [-1, {window}] (or [-1, {window}, 1])")
    return arr


def _decode_tabular(request: InferRequest, manifest: ModelManifest) -> FloatArray:
    features = manifest.features
    by_name = {t.name: t for t in request.inputs}
    if len(by_name) != len(request.inputs):
        raise InvalidInput("input names must be unique")
    if manifest.input_name in by_name:
        if len(request.inputs) != 1:
            raise InvalidInput(f"send either one input {manifest.input_name!r} or one input per feature, not both")
        t = by_name[manifest.input_name]
        arr = _float32(t)
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
        col = _float32(t)
        if col.ndim == 2 and col.shape[1] == 1:
            col = col[:, 0]
        if col.ndim != 1:
            raise InvalidInput(f"input {name!r}: shape {t.shape} does not match [-1] or [-1, 1]")
        columns.append(col)
    if len({len(c) for c in columns}) != 1:
        raise InvalidInput(f"inputs have different row counts: {[len(c) for c in columns]}")
    return np.stack(columns, axis=1)


def encode_outputs(outputs: FloatArray, manifest: ModelManifest,
                   requested: list[RequestedOutput] | None) -> list[Tensor]:
    """One FP32 ``(rows, 1)`` tensor per output (those ``requested``, else all), named as the manifest names them."""
    width = outputs.shape[1]
    names = manifest.outputs if len(manifest.outputs) == width else [f"output_{i}" for i in range(width)]
    wanted = [o.name for o in requested] if requested else names
    unknown = sorted(set(wanted) - set(names))
    if unknown:
        raise InvalidInput(f"unknown outputs requested {unknown}; this model returns {names}")
    return [Tensor(name=name, datatype="FP32", data=np.ascontiguousarray(outputs[:, [names.index(name)]], np.float32))
            for name in wanted]
