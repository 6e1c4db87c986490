"""Open Inference Protocol v2 REST types (JSON tensors), converted at the edge to and from the transport-neutral
request and response of :mod:`tensors`. Only this module knows the REST wire format of inference."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from mitiga_inference.tensors import (
    MAX_DIMENSIONS,
    InferRequest,
    InferResponse,
    Parameters,
    RequestedOutput,
    tensor,
)


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


def infer_request(request: InferenceRequest) -> InferRequest:
    """The data plane's request for a REST body; a malformed tensor raises InvalidInput naming it."""
    inputs = [tensor(t.name, t.datatype, t.shape, t.data, f"input {t.name!r}", t.parameters) for t in request.inputs]
    outputs = [RequestedOutput(o.name, o.parameters) for o in request.outputs] if request.outputs else None
    return InferRequest(inputs=inputs, id=request.id, parameters=request.parameters, outputs=outputs)


def inference_response(response: InferResponse) -> InferenceResponse:
    return InferenceResponse(
        model_name=response.model_name, model_version=response.model_version, id=response.id,
        parameters=response.parameters,
        outputs=[ResponseOutput(name=t.name, shape=t.shape, datatype=t.datatype, data=t.data.reshape(-1).tolist())
                 for t in response.outputs])
