"""The inference service's app factory: wires settings, adapters, the data plane and its REST and gRPC
transports."""

from __future__ import annotations

import asyncio
import gc
import logging
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from mitiga_core import __version__
from mitiga_core.bodyguard import BodyGuardMiddleware
from mitiga_core.errors import MitigaError
from mitiga_core.events import Topic
from mitiga_core.http import install_error_handlers
from mitiga_core.pb.mitiga.v1 import events_pb2 as pb
from mitiga_core.publisher import EventPublisher
from mitiga_core.state import InMemoryStateStore
from mitiga_inference import codec
from mitiga_inference.dataplane import DataPlane
from mitiga_inference.drain import Drain, DrainMiddleware
from mitiga_inference.fastpath import FastPath, InferenceApp
from mitiga_inference.grpc_server import GrpcTransport
from mitiga_inference.metrics import InferenceMetrics
from mitiga_inference.repository import ModelRepository
from mitiga_inference.rest import body_guards, build_router
from mitiga_inference.rollouts import RolloutListener
from mitiga_inference.routing import TrialRouter

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from fastapi import FastAPI
    from google.protobuf.message import Message

    from mitiga_core.bus import Bus
    from mitiga_core.state import StateStore
    from mitiga_core.store import ModelStore
    from mitiga_inference.settings import InferenceSettings

log = logging.getLogger(__name__)


def _inference_batch(events: list[Message]) -> Message:
    return pb.InferenceEventBatch(events=events)  # type: ignore[arg-type] # the publisher gives InferenceEvents


def create_app(settings: InferenceSettings, *, bus: Bus, store: ModelStore,
               state: StateStore | None = None) -> FastAPI:
    """``state`` keeps the request ids taken per model (in-process when None: one replica's view only)."""
    metrics = InferenceMetrics()
    for collector in bus.collectors():
        metrics.registry.register(collector)
    publisher = EventPublisher(bus, source=settings.service_name, maxsize=settings.event_buffer_size,
                               registry=metrics.registry, linger_s=settings.event_linger_s,
                               batch_as={Topic.INFERENCE: _inference_batch},
                               max_message_bytes=settings.max_message_bytes,
                               max_queue_bytes=settings.event_buffer_bytes)
    repository = ModelRepository(store, settings, metrics)
    router = TrialRouter(store, repository, metrics, max_in_flight=settings.max_shadow_in_flight,
                         max_bytes=settings.max_shadow_bytes,
                         linger_s=settings.shadow_linger_ms / 1000, batch_rows=max(1, settings.xla_max_rows))
    plane = DataPlane(settings=settings, repository=repository, store=store, bus=bus, publisher=publisher,
                      metrics=metrics, state=state if state is not None else InMemoryStateStore(), router=router)
    listener = RolloutListener(bus, store, repository, plane.expected_models, router,
                               pinned=set(settings.model_versions))
    grpc = None if settings.grpc_port is None else GrpcTransport(plane, settings.host, settings.grpc_port,
                                                                 settings.max_request_bytes,
                                                                 settings.max_concurrent_requests)

    drain = Drain()

    async def load_initial() -> None:
        for name in plane.expected_models:
            try:
                await repository.load(name, settings.model_versions.get(name), trigger="startup")
            except MitigaError as exc:
                log.error("model failed to load", extra={"model": name, "reason": str(exc)})
        for name in plane.expected_models:  # a candidate on live trial, read from the store (a restart keeps it)
            await router.reconcile(name)
        # TensorFlow leaves millions of long-lived objects; moving them out of the collector's sight keeps
        # full collections (which otherwise pause the event loop for 100+ ms) short.
        gc.freeze()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # read at start-up, not when the app is built: the store may have been filled in between
        # under a memory budget only the pinned models load now (the others on their first request)
        pinned = list(dict.fromkeys([*settings.models, *settings.model_versions]))
        plane.expected_models[:] = pinned if pinned or settings.model_memory_budget else store.list_models()
        publisher.start()
        loading = asyncio.create_task(load_initial())  # live at once, ready when loaded
        listener.start(asyncio.get_running_loop())
        drain.listen(asyncio.get_running_loop())
        if grpc is not None:
            await grpc.start()
        yield
        drain.close(asyncio.get_running_loop())
        if grpc is not None:
            await grpc.stop(settings.shutdown_grace_s)
        listener.stop()
        await loading
        await router.close()
        await repository.close()
        publisher.stop()  # sends what is buffered and flushes the bus
        bus.close()
        log.info("shutdown complete", extra={"events_undelivered": publisher.pending()})

    app = InferenceApp(title="mitiga inference", version=__version__, lifespan=lifespan,
                  description="Open Inference Protocol v2 over REST, with feedback and a model repository.")
    install_error_handlers(app)
    label_sources = settings.feedback_sources()
    app.include_router(build_router(plane, metrics, settings.admin_token, label_sources))
    app.add_middleware(BodyGuardMiddleware, limit=settings.max_request_bytes,
                       guards=body_guards(settings.admin_token, label_sources, settings.max_upload_bytes))
    app.add_middleware(DrainMiddleware, drain=drain)  # outermost: every response while draining closes
    app.fast = FastPath(plane, drain, settings.max_request_bytes)
    document = app.openapi
    app.openapi = lambda: app.openapi_schema or codec.document(document())  # type: ignore[method-assign]
    app.state.plane = plane
    app.state.metrics = metrics
    app.state.publisher = publisher
    app.state.grpc = grpc
    app.state.drain = drain
    return app
