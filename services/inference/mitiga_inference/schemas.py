"""The inference service's messages other than inference itself, the same whatever the transport: model metadata
(the gRPC edge converts it to its message) and ground-truth feedback (REST only)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, Field, model_validator

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


FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]


class FeedbackItem(BaseModel):
    request_id: str = Field(min_length=1, max_length=256)
    ground_truth: list[FiniteFloat] = Field(min_length=1)


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
    inputs = [MetadataTensor(name=manifest.input_name, datatype="FP32", shape=manifest.input_shape)]
    outputs = [MetadataTensor(name=name, datatype="FP32", shape=[-1, 1]) for name in manifest.outputs]
    return MetadataModelResponse(
        name=manifest.name, versions=versions, platform="tensorflow_keras", inputs=inputs, outputs=outputs,
        parameters={"task": manifest.task, "features": manifest.features, "window": manifest.window,
                    "version": manifest.version, "training": manifest.training.model_dump()},
    )
