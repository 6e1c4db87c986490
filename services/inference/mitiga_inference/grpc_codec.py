"""Open Inference Protocol v2 gRPC messages, converted at the edge to and from the REST types of :mod:`codec`.

The data plane knows one request type; this module turns a ``ModelInferRequest`` into it (typed ``contents`` or
``raw_input_contents``, as Triton and KServe clients send them) and its response back into a
``ModelInferResponse`` (raw bytes when the request came raw, as Triton answers).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import ValidationError

from mitiga_core.errors import InvalidInput
from mitiga_core.pb.inference import grpc_predict_v2_pb2 as pb
from mitiga_inference import codec

RAW_DTYPES: dict[str, str] = {
    "UINT8": "<u1", "UINT16": "<u2", "UINT32": "<u4", "UINT64": "<u8", "INT8": "<i1", "INT16": "<i2",
    "INT32": "<i4", "INT64": "<i8", "FP16": "<f2", "FP32": "<f4", "FP64": "<f8",
}
"""Little-endian element types of raw tensor bytes, by OIP datatype."""

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


def _data(tensor: Any, raw: bytes | None, where: str) -> list[Any]:
    datatype = tensor.datatype
    if datatype not in RAW_DTYPES:
        return []  # the REST codec refuses the datatype, with its message
    if raw is not None:
        if tensor.HasField("contents"):
            raise InvalidInput(f"{where}: send the data in raw_input_contents or in contents, not both")
        itemsize = np.dtype(RAW_DTYPES[datatype]).itemsize
        if len(raw) % itemsize:
            raise InvalidInput(f"{where}: raw_input_contents has {len(raw)} bytes, not a whole number of "
                               f"{datatype} values")
        return np.frombuffer(raw, RAW_DTYPES[datatype]).tolist()
    return list(getattr(tensor.contents, CONTENTS_FIELD[datatype]))


def inference_request(message: pb.ModelInferRequest) -> codec.InferenceRequest:
    """The REST request type for a gRPC request; a malformed one raises InvalidInput naming the field."""
    raw = list(message.raw_input_contents)
    if raw and len(raw) != len(message.inputs):
        raise InvalidInput(f"raw_input_contents has {len(raw)} entries for {len(message.inputs)} inputs")
    inputs = []
    for i, tensor in enumerate(message.inputs):
        where = f"inputs[{i}] ({tensor.name!r})"
        inputs.append({"name": tensor.name, "shape": list(tensor.shape), "datatype": tensor.datatype,
                       "parameters": parameters(tensor.parameters),
                       "data": _data(tensor, raw[i] if raw else None, where)})
    outputs = [{"name": o.name, "parameters": parameters(o.parameters)} for o in message.outputs] or None
    try:
        return codec.InferenceRequest(id=message.id or None, parameters=parameters(message.parameters),
                                      inputs=inputs, outputs=outputs)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        raise InvalidInput(f"{field}: {first['msg']}") from exc


def inference_response(response: codec.InferenceResponse, *, raw: bool) -> pb.ModelInferResponse:
    out = pb.ModelInferResponse(model_name=response.model_name, model_version=response.model_version or "",
                                id=response.id)
    for key, value in (response.parameters or {}).items():
        out.parameters[key].CopyFrom(_parameter(value))
    for output in response.outputs:
        tensor = out.outputs.add(name=output.name, datatype=output.datatype, shape=output.shape)
        if raw:
            out.raw_output_contents.append(np.asarray(output.data, RAW_DTYPES[output.datatype]).tobytes())
        else:
            getattr(tensor.contents, CONTENTS_FIELD[output.datatype]).extend(output.data)
    return out


def model_metadata(meta: codec.MetadataModelResponse) -> pb.ModelMetadataResponse:
    tensor = pb.ModelMetadataResponse.TensorMetadata
    return pb.ModelMetadataResponse(
        name=meta.name, versions=meta.versions, platform=meta.platform,
        inputs=[tensor(name=t.name, datatype=t.datatype, shape=t.shape) for t in meta.inputs],
        outputs=[tensor(name=t.name, datatype=t.datatype, shape=t.shape) for t in meta.outputs])
