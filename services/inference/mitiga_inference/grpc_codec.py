"""Open Inference Protocol v2 gRPC messages, converted at the edge to and from the transport-neutral request and
response of :mod:`tensors`: typed ``contents`` or ``raw_input_contents`` (as Triton and KServe clients send them;
raw bytes become arrays directly), and raw output bytes when the request came raw, as Triton answers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from mitiga_core.errors import InvalidInput
from mitiga_inference.pb.inference import grpc_predict_v2_pb2 as pb
from mitiga_inference.tensors import InferRequest, InferResponse, RequestedOutput, Tensor, from_raw, tensor
from mitiga_inference.tensors import raw as raw_bytes

if TYPE_CHECKING:
    from mitiga_inference.schemas import MetadataModelResponse

CONTENTS_FIELD: dict[str, str] = {
    "UINT8": "uint_contents", "UINT16": "uint_contents", "UINT32": "uint_contents",
    "UINT64": "uint64_contents", "INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents",
    "INT64": "int64_contents", "FP16": "fp32_contents", "FP32": "fp32_contents", "FP64": "fp64_contents",
}
"""The ``InferTensorContents`` field that carries each datatype."""


def parameters(params: Any) -> dict[str, Any] | None:
    """An ``InferParameter`` map as plain values."""
    out = {key: getattr(value, value.WhichOneof("parameter_choice")) for key, value in params.items()
           if value.WhichOneof("parameter_choice")}
    return out or None


def _parameter(value: Any) -> pb.InferParameter:
    if isinstance(value, bool):
        return pb.InferParameter(bool_param=value)
    if isinstance(value, int):
        return pb.InferParameter(int64_param=value)
    if isinstance(value, float):
        return pb.InferParameter(double_param=value)
    return pb.InferParameter(string_param=str(value))


def _tensor(message: Any, raw: bytes | None, where: str) -> Tensor:
    name, datatype, shape = message.name, message.datatype, list(message.shape)
    params = parameters(message.parameters)
    if raw is not None:
        if message.HasField("contents"):
            raise InvalidInput(f"{where}: send the data in raw_input_contents or in contents, not both")
        return from_raw(name, datatype, shape, raw, f"{where}: raw_input_contents", params)
    field = CONTENTS_FIELD.get(datatype)  # the values as protobuf holds them (int64, float32, ...)
    values = np.asarray(getattr(message.contents, field)) if field else np.zeros(0)
    return tensor(name, datatype, shape, values, where, params)


def inference_request(message: pb.ModelInferRequest) -> InferRequest:
    """The data plane's request for a gRPC request; a malformed one raises InvalidInput naming the field."""
    raw = list(message.raw_input_contents)
    if raw and len(raw) != len(message.inputs):
        raise InvalidInput(f"raw_input_contents has {len(raw)} entries for {len(message.inputs)} inputs")
    if not message.inputs:
        raise InvalidInput("inputs: at least one input is required")
    if len(message.id) > 256:
        raise InvalidInput("id: at most 256 characters")
    inputs = [_tensor(t, raw[i] if raw else None, f"inputs[{i}] ({t.name!r})") for i, t in enumerate(message.inputs)]
    outputs = [RequestedOutput(o.name, parameters(o.parameters)) for o in message.outputs] or None
    return InferRequest(inputs=inputs, id=message.id or None, parameters=parameters(message.parameters),
                        outputs=outputs)


def inference_response(response: InferResponse, *, raw: bool) -> pb.ModelInferResponse:
    out = pb.ModelInferResponse(model_name=response.model_name, model_version=response.model_version,
                                id=response.id)
    for key, value in (response.parameters or {}).items():
        out.parameters[key].CopyFrom(_parameter(value))
    for output in response.outputs:
        tensor_ = out.outputs.add(name=output.name, datatype=output.datatype, shape=output.shape)
        if raw:
            out.raw_output_contents.append(raw_bytes(output))
        elif output.datatype == "BYTES":
            tensor_.contents.bytes_contents.extend(output.data.reshape(-1).tolist())
        else:
            getattr(tensor_.contents, CONTENTS_FIELD[output.datatype]).extend(output.data.reshape(-1).tolist())
    return out


def model_metadata(meta: MetadataModelResponse) -> pb.ModelMetadataResponse:
    tensor_ = pb.ModelMetadataResponse.TensorMetadata
    return pb.ModelMetadataResponse(
        name=meta.name, versions=meta.versions, platform=meta.platform,
        inputs=[tensor_(name=t.name, datatype=t.datatype, shape=t.shape) for t in meta.inputs],
        outputs=[tensor_(name=t.name, datatype=t.datatype, shape=t.shape) for t in meta.outputs])
