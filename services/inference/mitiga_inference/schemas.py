"""The inference service's messages other than inference itself, the same whatever the transport: model metadata
(the gRPC edge converts it to its message) and ground-truth feedback (REST only)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, Field, StrictFloat, StrictInt, StrictStr, model_validator

if TYPE_CHECKING:
    from mitiga_core.bundle import ModelManifest


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


FiniteFloat = Annotated[StrictFloat, Field(allow_inf_nan=False)]
ClassName = Annotated[StrictStr, Field(min_length=1, max_length=256)]


class FeedbackItem(BaseModel):
    request_id: str = Field(min_length=1, max_length=256)
    ground_truth: list[StrictInt | FiniteFloat | ClassName] = Field(min_length=1)
    """The request's true values: numbers for a regression or a forecast (as many as it answered), a class name or
    index per row for a classifier. The model's task checks them (``Task.truth``)."""


class FeedbackRequest(BaseModel):
    """Ground truth for one request (``request_id`` + ``ground_truth``) or many (``items``)."""

    items: list[FeedbackItem] = Field(min_length=1, max_length=10_000)

    @model_validator(mode="before")
    @classmethod
    def _single(cls, data: Any) -> Any:
        if isinstance(data, dict) and "items" not in data and "request_id" in data:
            return {"items": [data]}
        return data


def metadata(manifest: ModelManifest, versions: list[str]) -> MetadataModelResponse:
    inputs = [MetadataTensor(name=i.name, datatype="FP32", shape=[-1, *i.shape]) for i in manifest.inputs] or \
        [MetadataTensor(name=manifest.input_name, datatype="FP32", shape=manifest.input_shape)]
    outputs = [MetadataTensor(name=name, datatype=datatype, shape=shape)
               for name, datatype, shape in manifest.kind.answer_metadata(manifest)]
    classes: dict[str, Any] = {"classes": manifest.classes} if manifest.classes else {}
    classes |= {"units": manifest.units} if manifest.units else {}
    return MetadataModelResponse(
        name=manifest.name, versions=versions, platform="tensorflow_keras", inputs=inputs, outputs=outputs,
        parameters={"task": manifest.task, "features": manifest.features, "window": manifest.window, **classes,
                    **({"inputs": [i.model_dump() for i in manifest.inputs]} if manifest.inputs else {}),
                    "version": manifest.version, "training": manifest.training.model_dump()},
    )
