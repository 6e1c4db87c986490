"""The REST transport: thin routes over the data plane, OIP v2 paths, errors as ``{"error": ...}``."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ValidationError

from mitiga_core.bundle import Scaler
from mitiga_core.errors import InvalidInput
from mitiga_core.http import admin_guard
from mitiga_inference import codec  # noqa: TC001 - FastAPI reads the route types at run time

if TYPE_CHECKING:

    from pydantic import SecretStr
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from mitiga_inference.dataplane import DataPlane
    from mitiga_inference.metrics import InferenceMetrics


class BodyLimitMiddleware:
    """413 for bodies over the limit: by Content-Length up front, or by reading a chunked body up to the limit."""

    def __init__(self, app: ASGIApp, *, limit: int, upload_limit: int) -> None:
        self.app = app
        self.limit = limit
        self.upload_limit = upload_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.upload_limit if scope["path"].endswith("/upload") else self.limit
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        if length is not None:
            if length.isdigit() and int(length) > limit:
                await self._reject(send, f"request body is {int(length)} bytes; the limit is {limit}")
                return
            await self.app(scope, receive, send)
            return
        # No Content-Length (chunked): read up to the limit here, then replay the body to the app.
        chunks: list[bytes] = []
        size, more = 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, receive, send)
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
            if size > limit:
                await self._reject(send, f"request body is over the limit of {limit} bytes")
                return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        await self.app(scope, replay, send)

    @staticmethod
    async def _reject(send: Send, message: str) -> None:
        body = json.dumps({"error": message}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})


def _scaler(field: str, raw: str | None) -> Scaler | None:
    if raw is None:
        return None
    try:
        return Scaler.model_validate_json(raw)
    except ValidationError as exc:
        raise InvalidInput(f"{field}: {exc.errors()[0]['msg']}") from exc


def build_router(plane: DataPlane, metrics: InferenceMetrics, admin_token: SecretStr | None,
                 feedback_token: SecretStr | None = None) -> APIRouter:
    router = APIRouter()
    admin = [Depends(admin_guard(admin_token))]
    labels = [Depends(admin_guard(feedback_token, "feedback"))] if feedback_token is not None else []

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
    async def model_metadata(name: str, version: str | None = None) -> codec.MetadataModelResponse:
        return plane.model_metadata(name, version)

    @router.get("/v2/models/{name}/ready", tags=["health"])
    @router.get("/v2/models/{name}/versions/{version}/ready", tags=["health"])
    async def model_ready(name: str, version: str | None = None) -> Response:
        ok = plane.model_ready(name, version)
        return JSONResponse({"name": name, "ready": ok}, status_code=200 if ok else 503)

    @router.post("/v2/models/{name}/infer", tags=["inference"])
    @router.post("/v2/models/{name}/versions/{version}/infer", tags=["inference"])
    async def infer(name: str, request: codec.InferenceRequest, version: str | None = None) -> codec.InferenceResponse:
        return await plane.infer(name, version, request)

    @router.post("/v2/models/{name}/feedback", tags=["inference"], status_code=202, dependencies=labels)
    async def feedback(name: str, request: codec.FeedbackRequest) -> dict[str, int]:
        return {"accepted": await plane.feedback(name, request)}

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

    @router.post("/v2/repository/models/{name}/upload", tags=["repository"], dependencies=admin, status_code=201)
    async def upload(
        name: str,
        request: Request,
        task: Annotated[str | None, Query(pattern="^(forecast|regression)$")] = None,
        features: Annotated[str | None, Query(description="Comma-separated feature names")] = None,
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
            input_scaler=_scaler("input_scaler", input_scaler), output_scaler=_scaler("output_scaler", output_scaler),
            champion=champion,
        )
        return {"name": name, "version": version}

    @router.get("/metrics", tags=["metrics"], include_in_schema=False)
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return router
