"""Properties of the REST and gRPC codecs, over generated shapes, datatypes, values, raw bytes and parameters: a
request is either decoded into finite float32 rows of the model's width or refused with InvalidInput (a 4xx that
names the field); nothing else ever escapes."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from mitiga_core.bundle import ModelManifest, Scaler
from mitiga_core.errors import InvalidInput
from mitiga_inference import codec, grpc_codec
from mitiga_inference.pb.inference import grpc_predict_v2_pb2 as oip
from mitiga_inference.rows import decode_inputs
from mitiga_inference.tensors import NUMERIC_DATATYPES, InferRequest

pytestmark = pytest.mark.slow  # hundreds of generated requests

EXAMPLES = int(os.environ.get("MITIGA_FUZZ_EXAMPLES", "100")) * 3
PROPERTY = settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
                    suppress_health_check=list(HealthCheck))
DATATYPES = [*sorted(NUMERIC_DATATYPES), "BYTES", "BOOL", "fp32", ""]
FORECAST = ModelManifest(name="f", task="forecast", features=["value"], window=4, input_scaler=Scaler(),
                         output_scaler=Scaler())
TABULAR = ModelManifest(name="t", task="regression", features=["a", "b", "c"], input_scaler=Scaler(),
                        output_scaler=Scaler())

numbers = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-(2**70), 2**70),
                    st.floats(min_value=-1e300, max_value=1e300), st.booleans())
scalars = st.one_of(st.text(max_size=8), st.booleans(), st.integers(-(2**70), 2**70), st.floats())
nested = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.text(max_size=4), inner, max_size=3)),
                      max_leaves=12)
shapes = st.lists(st.integers(-3, 2**63 - 1) | st.integers(0, 6), min_size=0, max_size=34)


def tensor(name: str) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({
        "name": st.sampled_from([name, "window", "input", "a", "b", "c", ""]),
        "shape": shapes, "datatype": st.sampled_from(DATATYPES),
        "data": st.lists(numbers | st.lists(numbers, max_size=4) | st.text(max_size=3), max_size=24),
    }, optional={"parameters": st.dictionaries(st.text(max_size=5), nested, max_size=2)})


requests = st.fixed_dictionaries(
    {"inputs": st.lists(tensor("input"), min_size=0, max_size=4)},
    optional={"id": st.text(max_size=300), "parameters": st.dictionaries(st.text(max_size=5), nested, max_size=3)})


def _decodes_or_refuses(body: dict[str, Any], manifest: ModelManifest) -> bool:
    """True when decoded (then the rows are right), False when refused as it should be."""
    try:
        request = codec.InferenceRequest.model_validate(body)  # the REST edge: pydantic answers 422 with the field
    except ValidationError:
        return False
    try:
        return _rows_or_refused(codec.infer_request(request), manifest)
    except InvalidInput as exc:
        assert str(exc)  # a message naming what is wrong
        return False


def _rows_or_refused(request: InferRequest, manifest: ModelManifest) -> bool:
    try:
        rows = decode_inputs(request, manifest)
    except InvalidInput as exc:
        assert str(exc)
        return False
    width = manifest.window if manifest.task == "forecast" else len(manifest.features)
    assert rows.dtype == np.float32 and rows.ndim == 2 and rows.shape[1] == width and len(rows) >= 1
    assert np.isfinite(rows).all()
    return True


@st.composite
def near_valid(draw: st.DrawFn) -> dict[str, Any]:
    """A well-formed forecast request, then perhaps one thing changed: most decode, so success is exercised too."""
    rows = draw(st.integers(1, 4))
    shape = draw(st.sampled_from([[rows, 4], [rows, 4, 1], [rows * 4], [rows, 5], [0, 4], [rows, 4, 2]]))
    values = draw(st.lists(numbers, min_size=rows * 4, max_size=rows * 4))
    datatype = draw(st.sampled_from(["FP32", "FP32", "FP64", "INT64", "FP16", "UINT8"]))
    return {"inputs": [{"name": FORECAST.input_name, "shape": shape, "datatype": datatype, "data": values}]}


DECODED = {"count": 0}


@PROPERTY
@given(body=requests, manifest=st.sampled_from([FORECAST, TABULAR]))
def test_the_rest_codec_decodes_or_refuses(body: dict[str, Any], manifest: ModelManifest) -> None:
    _decodes_or_refuses(body, manifest)


@PROPERTY
@given(body=near_valid())
def test_a_nearly_valid_request_decodes_to_finite_rows_or_is_refused(body: dict[str, Any]) -> None:
    if _decodes_or_refuses(body, FORECAST):
        DECODED["count"] += 1


def test_the_properties_reached_the_success_path() -> None:
    if not DECODED["count"]:
        test_a_nearly_valid_request_decodes_to_finite_rows_or_is_refused()
    assert DECODED["count"] > 0


grpc_tensors = st.builds(
    lambda name, shape, datatype, values, field: (name, shape, datatype, values, field),
    st.sampled_from(["window", "a", "x", ""]), st.lists(st.integers(-3, 2**62), max_size=10),
    st.sampled_from(DATATYPES), st.lists(st.floats(width=32) | st.integers(-(2**31), 2**31 - 1), max_size=16),
    st.sampled_from(["fp32_contents", "int_contents", "int64_contents", "fp64_contents", "raw", "none"]))


@PROPERTY
@given(tensors=st.lists(grpc_tensors, max_size=3), raw_extra=st.binary(max_size=40), id_=st.text(max_size=300),
       manifest=st.sampled_from([FORECAST, TABULAR]))
def test_the_grpc_codec_decodes_or_refuses(tensors: list[Any], raw_extra: bytes, id_: str,
                                           manifest: ModelManifest) -> None:
    message = oip.ModelInferRequest(model_name="m", id=id_)
    raws = []
    for name, shape, datatype, values, field in tensors:
        t = message.inputs.add(name=name, datatype=datatype, shape=[min(s, 2**62) for s in shape])
        if field == "raw":
            raws.append(np.asarray([v for v in values if isinstance(v, float)], "<f4").tobytes() + raw_extra[:3])
        elif field != "none":
            try:
                getattr(t.contents, field).extend(values if "fp" in field else [int(v) for v in values])
            except (TypeError, ValueError, OverflowError):
                continue  # a value protobuf itself refuses: not a request anyone can send
    message.raw_input_contents.extend(raws)
    try:
        request = grpc_codec.inference_request(message)
    except InvalidInput as exc:
        assert str(exc)
        return
    _rows_or_refused(request, manifest)  # straight from the gRPC edge: no REST model in between
