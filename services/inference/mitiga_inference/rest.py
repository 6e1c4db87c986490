"""The REST transport: thin routes over the data plane, OIP v2 paths, errors as ``{"error": ...}``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import ValidationError

from mitiga_core.bodyguard import Guard
from mitiga_core.bundle import Scaler
from mitiga_core.errors import InvalidInput
from mitiga_core.exposition import Exposition
from mitiga_core.http import admin_guard, bearer_error
from mitiga_core.tokens import bearer_name
from mitiga_inference import binary, codec, schemas
from mitiga_inference.fastpath import answer

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

    from pydantic import SecretStr

    from mitiga_inference.dataplane import DataPlane
    from mitiga_inference.metrics import InferenceMetrics


def body_guards(admin_token: SecretStr | None, feedback_tokens: Mapping[str, SecretStr],
                upload_limit: int) -> list[Guard]:
    """What the body guard checks before a byte is read: the admin routes' token (and the upload's own size limit),
    a feedback token when any is set."""
    return [
        Guard(r"/v2/repository/models/[^/]+/upload", admin_token, limit=upload_limit),
        Guard(r"/v2/repository/models/[^/]+(/versions/[^/]+)?/(load|unload)", admin_token),
        Guard(r"/v2/models/[^/]+/feedback", feedback_tokens, kind="feedback", required=bool(feedback_tokens)),
    ]


def feedback_source(tokens: Mapping[str, SecretStr]) -> Callable[..., Awaitable[str]]:
    """A dependency: the name of the label source whose token the request carries ('' when feedback is open)."""

    async def source(authorization: Annotated[str | None, Header()] = None) -> str:
        if not tokens:
            return ""
        scheme, _, value = (authorization or "").partition(" ")
        name = bearer_name(value, tokens) if scheme.lower() == "bearer" and value else None
        if name is None:  # the body guard refused it already; this holds without the guard too
            raise bearer_error(authorization, tokens, "feedback") or AssertionError("a valid token names a source")
        return name

    return source


def _scaler(field: str, raw: str | None) -> Scaler | None:
    if raw is None:
        return None
    try:
        return Scaler.model_validate_json(raw)
    except ValidationError as exc:
        raise InvalidInput(f"{field}: {exc.errors()[0]['msg']}") from exc


def build_router(plane: DataPlane, metrics: InferenceMetrics, admin_token: SecretStr | None,
                 feedback_tokens: Mapping[str, SecretStr] | None = None) -> APIRouter:
    router = APIRouter()
    admin = [Depends(admin_guard(admin_token))]
    label_source = feedback_source(feedback_tokens or {})

    @router.get("/v2/health/live", tags=["health"])
    async def live() -> dict[str, bool]:
        return {"live": True}

    @router.get("/v2/health/ready", tags=["health"])
    async def ready() -> Response:
        ok = plane.ready()
        return JSONResponse({"ready": ok}, status_code=200 if ok else 503)

    @router.get("/v2", tags=["metadata"])
    async def server_metadata() -> dict[str, Any]:
        return plane.server_metadata()

    @router.get("/v2/models/{name}", tags=["metadata"])
    @router.get("/v2/models/{name}/versions/{version}", tags=["metadata"])
    async def model_metadata(name: str, version: str | None = None) -> schemas.MetadataModelResponse:
        return await plane.model_metadata(name, version)

    @router.get("/v2/models/{name}/ready", tags=["health"])
    @router.get("/v2/models/{name}/versions/{version}/ready", tags=["health"])
    async def model_ready(name: str, version: str | None = None) -> Response:
        ok = plane.model_ready(name, version)
        return JSONResponse({"name": name, "ready": ok}, status_code=200 if ok else 503)

    @router.post("/v2/models/{name}/infer", tags=["inference"], response_model=codec.InferenceResponse,
                 openapi_extra=codec.INFER_BODY)
    @router.post("/v2/models/{name}/versions/{version}/infer", tags=["inference"],
                 response_model=codec.InferenceResponse, openapi_extra=codec.INFER_BODY)
    async def infer(name: str, request: Request, version: str | None = None) -> Response:
        """JSON tensors, or the binary tensor extension (``Inference-Header-Content-Length``); whatever the
        Content-Type, as OIP clients label their bodies differently (tritonclient sends none). The service answers
        these requests in front of the framework (:mod:`mitiga_inference.fastpath`); this route documents them and
        answers while the pod drains."""
        content, media, headers = await answer(plane, name, version, await request.body(),
                                               request.headers.get(binary.HEADER), request.headers.get("authorization"))
        return Response(content, media_type=media, headers=headers)

    @router.post("/v2/models/{name}/feedback", tags=["inference"], status_code=202)
    async def feedback(name: str, request: schemas.FeedbackRequest,
                       source: str = Depends(label_source)) -> dict[str, int]:
        return {"accepted": await plane.feedback(name, request, source)}

    @router.post("/v2/repository/index", tags=["repository"])
    async def repository_index() -> list[dict[str, str]]:
        return plane.repository_index()

    @router.post("/v2/repository/models/{name}/load", tags=["repository"], dependencies=admin)
    async def load(name: str, version: Annotated[str | None, Query()] = None) -> dict[str, str]:
        return {"name": name, "version": await plane.load(name, version)}

    @router.post("/v2/repository/models/{name}/unload", tags=["repository"], dependencies=admin)
    async def unload(name: str) -> dict[str, str]:
        await plane.unload(name)
        return {"name": name, "state": "UNAVAILABLE"}

    @router.post("/v2/repository/models/{name}/versions/{version}/load", tags=["repository"], dependencies=admin)
    async def load_beside(name: str, version: str) -> dict[str, str]:
        """Load a version beside the one the unversioned routes serve: its versioned routes answer from it (409
        past ``MITIGA_MAX_LOADED_VERSIONS`` per model)."""
        return {"name": name, "version": await plane.load_beside(name, version), "state": "READY"}

    @router.post("/v2/repository/models/{name}/versions/{version}/unload", tags=["repository"], dependencies=admin)
    async def unload_beside(name: str, version: str) -> dict[str, str]:
        await plane.unload_beside(name, version)
        return {"name": name, "version": version, "state": "UNAVAILABLE"}

    @router.post("/v2/repository/models/{name}/upload", tags=["repository"], dependencies=admin, status_code=201)
    async def upload(
        name: str,
        request: Request,
        task: Annotated[str | None, Query(
            pattern="^(forecast|regression|binary|multiclass)$",
            description="The model's task; unset: read from its last layer (softmax: multiclass, one sigmoid unit: "
                        "binary, else a forecast for (window, 1) inputs, else a regression)")] = None,
        features: Annotated[str | None, Query(description="Comma-separated feature names")] = None,
        classes: Annotated[str | None, Query(
            description="A classifier's comma-separated class names, in the order of its probabilities "
                        "(default 0..k-1)")] = None,
        units: Annotated[str | None, Query(max_length=32, description="What the answers are measured in (USD, "
                                                                      "mg/m³): errors are shown in them")] = None,
        input_scaler: Annotated[str | None, Query(description="Scaler JSON, e.g. {\"kind\":\"none\"}")] = None,
        output_scaler: Annotated[str | None, Query()] = None,
        champion: bool = True,
    ) -> dict[str, str]:
        """Upload a ``.keras`` file or a bundle zip as the body (``application/octet-stream``)."""
        from mitiga_core.store import check_model_name

        try:
            check_model_name(name)
        except ValueError as exc:
            raise InvalidInput(f"name: {exc}") from exc
        data = await request.body()
        if not data:
            raise InvalidInput("body: empty upload")
        version = await plane.upload(
            name, data, task=task, features=[f.strip() for f in features.split(",")] if features else None,
            classes=[c.strip() for c in classes.split(",")] if classes else None, units=units,
            input_scaler=_scaler("input_scaler", input_scaler), output_scaler=_scaler("output_scaler", output_scaler),
            champion=champion,
        )
        return {"name": name, "version": version}

    @router.post("/v2/repository/models/{name}/rollback", tags=["repository"], dependencies=admin)
    async def rollback(name: str, version: Annotated[str | None, Query(
            description="The version to return to; the champion before this one when absent")] = None,
    ) -> dict[str, str]:
        """Make an earlier version the champion again: this replica serves it at once, the others hear the
        rollout event; the model's decision log records it beside the gate's decisions."""
        return await plane.rollback(name, version)

    exposition = Exposition(metrics.registry)

    @router.get("/metrics", tags=["metrics"], include_in_schema=False)
    async def prometheus_metrics() -> Response:
        return Response(exposition.render(), media_type=CONTENT_TYPE_LATEST)

    return router
