"""The Open Inference Protocol v2 gRPC transport: a thin servicer over the same data plane as REST.

It runs on the service's event loop (``grpc.aio``), so gRPC and REST requests share the micro-batcher, the hot
swap and the event stream. mitiga errors become the gRPC status of their HTTP code, with the same message.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Any, NoReturn

import grpc

from mitiga_core.errors import InvalidInput, MitigaError
from mitiga_inference import grpc_codec
from mitiga_inference.pb.inference import grpc_predict_v2_pb2 as pb
from mitiga_inference.pb.inference import grpc_predict_v2_pb2_grpc as pb_grpc

if TYPE_CHECKING:
    from mitiga_inference.dataplane import DataPlane

log = logging.getLogger(__name__)

STATUS: dict[int, grpc.StatusCode] = {
    400: grpc.StatusCode.INVALID_ARGUMENT, 401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED, 404: grpc.StatusCode.NOT_FOUND,
    409: grpc.StatusCode.ALREADY_EXISTS, 413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    422: grpc.StatusCode.INVALID_ARGUMENT, 503: grpc.StatusCode.UNAVAILABLE,
}


async def _abort(context: grpc.aio.ServicerContext[Any, Any], exc: MitigaError) -> NoReturn:
    await context.abort(STATUS.get(exc.status_code, grpc.StatusCode.INTERNAL), str(exc))
    raise AssertionError("abort returned")  # pragma: no cover - abort always raises


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(self, plane: DataPlane) -> None:
        self._plane = plane

    async def ServerLive(self, request: pb.ServerLiveRequest, context: Any) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request: pb.ServerReadyRequest, context: Any) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self._plane.ready())

    async def ModelReady(self, request: pb.ModelReadyRequest, context: Any) -> pb.ModelReadyResponse:
        try:
            return pb.ModelReadyResponse(ready=self._plane.model_ready(request.name, request.version or None))
        except MitigaError as exc:
            await _abort(context, exc)

    async def ServerMetadata(self, request: pb.ServerMetadataRequest,
                             context: Any) -> pb.ServerMetadataResponse:
        meta = self._plane.server_metadata()
        return pb.ServerMetadataResponse(name=meta["name"], version=meta["version"], extensions=meta["extensions"])

    async def ModelMetadata(self, request: pb.ModelMetadataRequest,
                            context: Any) -> pb.ModelMetadataResponse:
        try:
            return grpc_codec.model_metadata(await self._plane.model_metadata(request.name, request.version or None))
        except MitigaError as exc:
            await _abort(context, exc)

    async def ModelInfer(self, request: pb.ModelInferRequest, context: Any) -> pb.ModelInferResponse:
        try:
            if not request.model_name:
                raise InvalidInput("model_name: required")
            authorization = dict(context.invocation_metadata() or ()).get("authorization")
            converted = replace(grpc_codec.inference_request(request), caller=self._plane.caller(authorization))
            response = await self._plane.infer(request.model_name, request.model_version or None, converted)
        except MitigaError as exc:
            await _abort(context, exc)
        return grpc_codec.inference_response(response, raw=bool(request.raw_input_contents))


class GrpcTransport:
    """Starts and stops the gRPC server within the REST app's lifespan."""

    def __init__(self, plane: DataPlane, host: str, port: int, max_message_bytes: int,
                 max_concurrent_rpcs: int | None = None) -> None:
        self._plane = plane
        self._address = f"{host}:{port}"
        self._max = max_message_bytes
        self._max_rpcs = max_concurrent_rpcs
        self._server: grpc.aio.Server | None = None
        self.port: int | None = None
        """The bound port (useful when configured as 0)."""

    async def start(self) -> None:
        server = grpc.aio.server(options=[("grpc.max_receive_message_length", self._max),
                                          ("grpc.max_send_message_length", self._max)],
                                 maximum_concurrent_rpcs=self._max_rpcs)
        pb_grpc.add_GRPCInferenceServiceServicer_to_server(InferenceServicer(self._plane), server)
        self.port = server.add_insecure_port(self._address)
        if not self.port:
            raise RuntimeError(f"the gRPC port {self._address} could not be bound")
        await server.start()
        self._server = server
        log.info("grpc listening", extra={"address": self._address, "port": self.port})

    async def stop(self, grace_s: float) -> None:
        """Refuse new calls and let the calls in flight finish for up to ``grace_s``."""
        if self._server is not None:
            await self._server.stop(grace_s)
            self._server = None
