"""Open Inference Protocol v2 REST types (JSON tensors, or binary ones: :mod:`binary`), converted at the edge to and
from the transport-neutral request and response of :mod:`tensors`. Only this module knows the REST wire format of
inference."""

from __future__ import annotations

import json
import math
from typing import Any

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mitiga_core.errors import InvalidInput
from mitiga_inference.binary import BinaryReader, check_bytes_elements
from mitiga_inference.tensors import (
    MAX_DIMENSIONS,
    InferRequest,
    InferResponse,
    Parameters,
    RequestedOutput,
    from_raw,
    tensor,
    values,
)
from mitiga_inference.tensors import raw as raw_bytes


class RequestInput(BaseModel):
    name: str = Field(min_length=1)
    shape: list[int] = Field(min_length=1, max_length=MAX_DIMENSIONS)
    datatype: str
    parameters: Parameters | None = None
    data: list[Any] | None = None
    """The values, row-major; absent when ``parameters.binary_data_size`` says they follow the JSON in binary."""


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
    parameters: Parameters | None = None
    data: list[float | str] | None = None
    """Numbers, or a BYTES output's texts; absent for an output sent in binary (its ``parameters.binary_data_size``
    bytes follow the JSON)."""


class InferenceResponse(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    model_name: str
    model_version: str | None = None
    id: str
    parameters: dict[str, Any] | None = None
    outputs: list[ResponseOutput]


def parse(header: bytes) -> InferenceRequest:
    """The JSON part of a request body, or the 422 FastAPI would give for it."""
    try:  # pydantic's own JSON parser: a 256-row tensor in 0.9 ms instead of 4 (json.loads, then validation)
        return InferenceRequest.model_validate_json(header)
    except ValidationError as exc:
        if not any(e["type"] == "json_invalid" and "recursion" in e["msg"] for e in exc.errors()):
            raise _invalid(exc) from None
    try:  # nested past that parser's limit: Python's parser takes it, and validation then names the field
        data = json.loads(header)
    except (ValueError, RecursionError) as exc:
        raise RequestValidationError([{"loc": ("body",), "msg": f"JSON decode error: {exc}",
                                       "type": "json_invalid"}]) from None
    try:
        return InferenceRequest.model_validate(data)
    except ValidationError as exc:
        raise _invalid(exc) from None


def _invalid(exc: ValidationError) -> RequestValidationError:
    return RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()])


def infer_request(request: InferenceRequest, binary: memoryview | None = None) -> InferRequest:
    """The data plane's request for a REST body (its JSON header and its binary part); a malformed tensor raises
    InvalidInput naming it."""
    reader = BinaryReader(binary if binary is not None else memoryview(b""))
    inputs = []
    for t in request.inputs:
        where = f"input {t.name!r}"
        size = (t.parameters or {}).get("binary_data_size")
        if size is None:
            if t.data is None:
                raise InvalidInput(f"{where}: data is required (or parameters.binary_data_size, the data in binary)")
            inputs.append(tensor(t.name, t.datatype, t.shape, t.data, where, t.parameters))
            continue
        if t.data is not None:
            raise InvalidInput(f"{where}: send data or parameters.binary_data_size, not both")
        raw = reader.take(size, where)
        if t.datatype == "BYTES":
            check_bytes_elements(raw, math.prod(t.shape), where)
        inputs.append(from_raw(t.name, t.datatype, t.shape, raw, where, t.parameters))
    reader.finish()
    outputs = [RequestedOutput(o.name, o.parameters) for o in request.outputs] if request.outputs else None
    return InferRequest(inputs=inputs, id=request.id, parameters=request.parameters, outputs=outputs)


def _binary_wanted(request: InferenceRequest) -> dict[str, bool]:
    """Which outputs go in binary: an output's ``binary_data`` parameter, else the request's
    ``binary_data_output``."""
    default = bool((request.parameters or {}).get("binary_data_output", False))
    wanted: dict[str, bool] = {}
    for output in request.outputs or []:
        own = (output.parameters or {}).get("binary_data")
        wanted[output.name] = default if own is None else bool(own)
    return {"*": default, **wanted}


def encode_response(response: InferResponse, request: InferenceRequest) -> tuple[bytes, bytes]:
    """The response body's JSON and the binary outputs that follow it (empty when none was asked for binary)."""
    wanted, outputs, binary = _binary_wanted(request), [], []
    for t in response.outputs:
        if wanted.get(t.name, wanted["*"]):
            raw = raw_bytes(t)
            binary.append(raw)
            outputs.append({"name": t.name, "shape": t.shape, "datatype": t.datatype,
                            "parameters": {"binary_data_size": len(raw)}})
        else:
            outputs.append({"name": t.name, "shape": t.shape, "datatype": t.datatype,
                            "data": values(t)})
    body: dict[str, Any] = {"model_name": response.model_name, "model_version": response.model_version,
                            "id": response.id, "outputs": outputs}
    if response.parameters is not None:
        body["parameters"] = response.parameters
    return json.dumps(body, separators=(",", ":")).encode(), b"".join(binary)


def document(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` (an app's OpenAPI document) with the infer routes' request body described: they read the body
    themselves (JSON, or JSON and binary), so FastAPI cannot see its type."""
    from pydantic import TypeAdapter

    body = TypeAdapter(InferenceRequest).json_schema(ref_template="#/components/schemas/{model}")
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.update(body.pop("$defs", {}))
    components["InferenceRequest"] = body
    return schema


INFER_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": {"$ref": "#/components/schemas/InferenceRequest"}},
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"},
                                 "description": "a JSON header of Inference-Header-Content-Length bytes, then the "
                                                "binary tensors"}}}}
"""The OpenAPI description of the infer routes' body (with :func:`document`)."""
