"""The data plane's request is transport-neutral: the REST and gRPC edges both hand it numpy tensors (raw gRPC bytes
as an array of their own element type, never through Python lists), equal for the same values, and refuse a bad
tensor with the same words."""

from __future__ import annotations

import numpy as np
import pytest

from mitiga_core.errors import InvalidInput
from mitiga_inference import codec, grpc_codec
from mitiga_inference.pb.inference import grpc_predict_v2_pb2 as oip
from mitiga_inference.tensors import InferRequest, Tensor

VALUES = np.arange(12, dtype=np.float32).reshape(3, 4) / 7


def _rest(values: np.ndarray, datatype: str = "FP32", shape: list[int] | None = None) -> InferRequest:
    body = codec.InferenceRequest.model_validate({"id": "r", "inputs": [
        {"name": "window", "shape": shape or list(values.shape), "datatype": datatype,
         "data": values.reshape(-1).tolist()}]})
    return codec.infer_request(body)


def _grpc(values: np.ndarray, *, raw: bool, datatype: str = "FP32", shape: list[int] | None = None) -> InferRequest:
    message = oip.ModelInferRequest(model_name="m", id="r")
    tensor = message.inputs.add(name="window", datatype=datatype, shape=shape or list(values.shape))
    if raw:
        message.raw_input_contents.append(values.astype(np.dtype("<f8" if datatype == "FP64" else "<f4")).tobytes())
    else:
        field = tensor.contents.fp64_contents if datatype == "FP64" else tensor.contents.fp32_contents
        field.extend(values.reshape(-1).tolist())
    return grpc_codec.inference_request(message)


@pytest.mark.parametrize("datatype", ["FP32", "FP64"])
def test_every_edge_hands_the_data_plane_the_same_array(datatype: str) -> None:
    requests = [_rest(VALUES, datatype), _grpc(VALUES, raw=False, datatype=datatype),
                _grpc(VALUES, raw=True, datatype=datatype)]
    for request in requests:
        [tensor] = request.inputs
        assert isinstance(tensor, Tensor) and isinstance(tensor.data, np.ndarray)
        assert tensor.shape == [3, 4] and tensor.datatype == datatype and request.id == "r"
        np.testing.assert_array_equal(tensor.data.astype(np.float32), VALUES)
    raw = requests[2].inputs[0].data
    assert raw.dtype == np.dtype("<f8" if datatype == "FP64" else "<f4")  # the bytes' own type, no list between


@pytest.mark.parametrize("make", [lambda: _rest(VALUES, shape=[3, 5]), lambda: _grpc(VALUES, raw=False, shape=[3, 5]),
                                  lambda: _grpc(VALUES, raw=True, shape=[3, 5])])
def test_a_short_tensor_is_refused_in_the_same_words_on_every_edge(make) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidInput, match=r"shape \[3, 5\] needs 15 values, got 12"):
        make()
