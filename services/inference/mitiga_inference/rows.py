"""Between the request's tensors and the model: the inputs as one (rows, columns) float32 array in the manifest's
column order, and the model's outputs as the response's tensors. Transport-neutral (:mod:`tensors`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from mitiga_core.errors import InvalidInput
from mitiga_inference.tensors import InferRequest, RequestedOutput, Tensor

if TYPE_CHECKING:
    from mitiga_core.bundle import ModelManifest
    from mitiga_core.types import AnyArray, FloatArray


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
    """The request's inputs as one (rows, columns) array in the manifest's column order, as the model's task lays
    them out (a window of a series, or a table)."""
    return _DECODERS[manifest.kind.layout(manifest)](request, manifest)


def _decode_window(request: InferRequest, manifest: ModelManifest) -> FloatArray:
    window = manifest.input_width
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


def _decode_table(request: InferRequest, manifest: ModelManifest) -> FloatArray:
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
    return _same_rows([_column(by_name[name]) for name in features])


def _column(t: Tensor) -> FloatArray:
    """One feature's tensor as a column of values: shape [-1] or [-1, 1]."""
    col = _float32(t)
    if col.ndim == 2 and col.shape[1] == 1:
        col = col[:, 0]
    if col.ndim != 1:
        raise InvalidInput(f"input {t.name!r}: shape {t.shape} does not match [-1] or [-1, 1]")
    return col


def _same_rows(parts: list[FloatArray]) -> FloatArray:
    """Columns ``(rows,)`` or blocks of columns ``(rows, n)`` side by side, when they have the same rows."""
    if len({len(p) for p in parts}) != 1:
        raise InvalidInput(f"inputs have different row counts: {[len(p) for p in parts]}")
    return np.column_stack(parts)


def _decode_inputs(request: InferRequest, manifest: ModelManifest) -> FloatArray:
    """A model with several inputs: each model input's tensor by its name (shape [-1, *shape], or flat), else one
    tensor per feature of that input (``input.feature``); the flat rows in the manifest's order."""
    by_name = {t.name: t for t in request.inputs}
    if len(by_name) != len(request.inputs):
        raise InvalidInput("input names must be unique")
    used, parts = set(), []
    for model_input in manifest.inputs:
        t = by_name.get(model_input.name)
        if t is not None:
            arr = _float32(t)
            if list(arr.shape[1:]) not in (model_input.shape, [model_input.width]):
                raise InvalidInput(f"input {t.name!r}: shape {t.shape} does not match {[-1, *model_input.shape]}")
            parts.append(arr.reshape(len(arr), model_input.width))
            used.add(t.name)
            continue
        features = manifest.input_features(model_input.name)
        if not all(f in by_name for f in features):
            raise InvalidInput(f"missing input {model_input.name!r} (shape {[-1, *model_input.shape]}, or one "
                               f"tensor per feature {features})")
        parts.append(_same_rows([_column(by_name[f]) for f in features]))
        used.update(features)
    unknown = sorted(set(by_name) - used)
    if unknown:
        raise InvalidInput(f"unknown inputs {unknown}; this model takes the inputs "
                           f"{[i.name for i in manifest.inputs]}")
    return _same_rows(parts)


_DECODERS = {"window": _decode_window, "table": _decode_table, "inputs": _decode_inputs}


def encode_outputs(outputs: FloatArray, manifest: ModelManifest,
                   requested: list[RequestedOutput] | None) -> list[Tensor]:
    """The tensors the model's task answers with (those ``requested``, else all). A requested output with the
    ``classification`` parameter (Triton's classification extension) answers its top K values per row instead, as
    BYTES ``score:index`` (``score:index:label`` for a classifier's probabilities)."""
    answers = {name: (datatype, data) for name, datatype, data in manifest.kind.answers(manifest, outputs)}
    wanted = requested or [RequestedOutput(name) for name in answers]
    unknown = sorted({o.name for o in wanted} - set(answers))
    if unknown:
        raise InvalidInput(f"unknown outputs requested {unknown}; this model returns {list(answers)}")
    tensors = []
    for output in wanted:
        datatype, data = answers[output.name]
        top = (output.parameters or {}).get("classification")
        if top is None:
            tensors.append(Tensor(name=output.name, datatype=datatype, data=data))
            continue
        labels = manifest.classes if data.ndim == 2 and data.shape[1] == len(manifest.classes) else None
        tensors.append(Tensor(name=output.name, datatype="BYTES", data=_top_k(output.name, datatype, data, top,
                                                                               labels)))
    return tensors


def _top_k(name: str, datatype: str, data: AnyArray, k: object, labels: list[str] | None) -> AnyArray:
    """Each row's ``k`` largest values, largest first, as ``score:index[:label]`` bytes ``(rows, k)``."""
    where = f"outputs[{name!r}].parameters.classification"
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise InvalidInput(f"{where}: {k!r} must be a whole number of classes, at least 1")
    if datatype == "BYTES":
        raise InvalidInput(f"{where}: output {name!r} holds BYTES, not scores to classify")
    scores = data.reshape(len(data), -1)
    k = min(k, scores.shape[1])
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    out = np.empty((len(scores), k), dtype=object)
    for r, row in enumerate(order):
        for j, index in enumerate(row):
            label = f":{labels[index]}" if labels else ""
            out[r, j] = f"{scores[r, index]:f}:{index}{label}".encode()
    return out
