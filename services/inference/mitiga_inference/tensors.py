"""The data plane's inference request and response, whatever the transport: tensors as numpy arrays (as KServe's
``InferRequest``). The REST edge (:mod:`codec`) and the gRPC edge (:mod:`grpc_codec`) convert their wire formats
to and from these, each through :func:`tensor`, so both refuse a malformed tensor with the same message; raw bytes
become an array without passing through Python lists.

What a model makes of the tensors (its rows, in its column order) is :mod:`rows`'s.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

from mitiga_core.errors import InvalidInput

DTYPES: dict[str, str] = {
    "UINT8": "<u1", "UINT16": "<u2", "UINT32": "<u4", "UINT64": "<u8", "INT8": "<i1", "INT16": "<i2",
    "INT32": "<i4", "INT64": "<i8", "FP16": "<f2", "FP32": "<f4", "FP64": "<f8",
}
"""The numeric OIP datatypes, each with its little-endian element type (the layout of raw tensor bytes)."""
NUMERIC_DATATYPES = frozenset(DTYPES)

MAX_DIMENSIONS = 8
MAX_DIMENSION = 2**31 - 1

Parameters = dict[str, str | bool | int | float]
"""OIP parameters: each value a string, a number or a boolean (no nesting, so nothing deep can be echoed back)."""


@dataclass(frozen=True)
class Tensor:
    name: str
    datatype: str
    data: np.ndarray[Any, Any]
    """Shaped as the tensor; elements as sent (the model's float32 rows come later, in :mod:`rows`)."""
    parameters: Parameters | None = None

    @property
    def shape(self) -> list[int]:
        return list(self.data.shape)


@dataclass(frozen=True)
class RequestedOutput:
    name: str
    parameters: Parameters | None = None


@dataclass(frozen=True)
class InferRequest:
    inputs: list[Tensor]
    id: str | None = None
    parameters: Parameters | None = None
    outputs: list[RequestedOutput] | None = None
    caller: str = ""
    """Who sent it, as the transport identified it: the name of the backfill token it carried ('admin' for the
    admin token), '' for an anonymous caller. Only a named caller may date its request (``parameters.data_time``)."""


@dataclass(frozen=True)
class InferResponse:
    model_name: str
    model_version: str
    id: str
    outputs: list[Tensor]
    parameters: Parameters | None = None


def check_shape(shape: list[int], where: str) -> None:
    if not shape or len(shape) > MAX_DIMENSIONS:
        raise InvalidInput(f"{where}: shape {shape[:MAX_DIMENSIONS + 1]}: 1 to {MAX_DIMENSIONS} dimensions")
    if any(d < 1 or d > MAX_DIMENSION for d in shape):
        raise InvalidInput(f"{where}: shape {shape}: every dimension must be between 1 and {MAX_DIMENSION}")


def tensor(name: str, datatype: str, shape: list[int], data: Any, where: str,
           parameters: Parameters | None = None) -> Tensor:
    """A tensor from a transport's values (a list from JSON, an array from raw bytes), or InvalidInput saying what is
    wrong with it, under ``where`` (the field's name in that transport)."""
    if datatype not in NUMERIC_DATATYPES:
        raise InvalidInput(f"{where}: datatype {datatype!r} is not supported; send FP32 (or another numeric type)")
    check_shape(shape, where)
    try:
        arr = np.asarray(data)
    except ValueError as exc:
        raise InvalidInput(f"{where}: data is ragged: {exc}") from exc
    if arr.dtype.kind not in "biuf":
        raise InvalidInput(f"{where}: data must be numbers for datatype {datatype}")
    expected = math.prod(shape)
    if arr.size != expected:
        raise InvalidInput(f"{where}: shape {shape} needs {expected} values, got {arr.size}")
    return Tensor(name=name, datatype=datatype, data=arr.reshape(shape), parameters=parameters)


def raw(t: Tensor) -> bytes:
    """A tensor's raw bytes: little-endian elements, or each BYTES element as a 4-byte little-endian length and its
    bytes (the layout of OIP binary data and of gRPC ``raw_output_contents``)."""
    if t.datatype == "BYTES":
        return b"".join(struct.pack("<I", len(v)) + v for v in t.data.reshape(-1))
    return np.ascontiguousarray(t.data, DTYPES[t.datatype]).tobytes()


def values(t: Tensor) -> list[Any]:
    """A tensor's elements, row-major, as JSON takes them (a BYTES element as its UTF-8 text)."""
    if t.datatype == "BYTES":
        return [v.decode() for v in t.data.reshape(-1)]
    return list(t.data.reshape(-1).tolist())


def from_raw(name: str, datatype: str, shape: list[int], raw: bytes, where: str,
             parameters: Parameters | None = None) -> Tensor:
    """A tensor from its raw little-endian bytes (gRPC ``raw_input_contents``)."""
    if datatype not in NUMERIC_DATATYPES:
        raise InvalidInput(f"{where}: datatype {datatype!r} is not supported; send FP32 (or another numeric type)")
    itemsize = np.dtype(DTYPES[datatype]).itemsize
    if len(raw) % itemsize:
        raise InvalidInput(f"{where}: {len(raw)} bytes are not a whole number of {datatype} values")
    return tensor(name, datatype, shape, np.frombuffer(raw, DTYPES[datatype]), where, parameters)
