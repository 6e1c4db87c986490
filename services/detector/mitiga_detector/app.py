"""The detector's app factory: the bus consumer plus health, metrics and report endpoints."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from mitiga_core import __version__
from mitiga_core.bodyguard import BodyGuardMiddleware, Guard
from mitiga_core.exposition import Exposition
from mitiga_core.http import install_error_handlers
from mitiga_core.publisher import EventPublisher
from mitiga_detector.api import build_router
from mitiga_detector.consumer import DetectorConsumer
from mitiga_detector.core import DetectorCore
from mitiga_detector.heap import Heap
from mitiga_detector.metrics import DetectorMetrics

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from mitiga_core.bus import Bus
    from mitiga_core.jobs import JobLauncher
    from mitiga_core.state import StateStore
    from mitiga_core.store import ModelStore
    from mitiga_detector.settings import DetectorSettings


def create_app(settings: DetectorSettings, *, bus: Bus, store: ModelStore, state: StateStore,
               launcher: JobLauncher | None, own_process: bool = False) -> FastAPI:
    """``own_process``: the detector is the process's only service (``python -m mitiga_detector``), so it may keep
    its monitors out of the garbage collector's full passes (:mod:`mitiga_detector.heap`); not when it shares the
    process with the inference service (standalone mode), whose unloaded models the collector must keep freeing."""
    metrics = DetectorMetrics()
    for collector in bus.collectors():
        metrics.registry.register(collector)
    publisher = EventPublisher(bus, source=settings.service_name, maxsize=10_000, registry=metrics.registry,
                               max_message_bytes=settings.max_message_bytes)
    core = DetectorCore(settings, store=store, state=state, publisher=publisher, metrics=metrics, launcher=launcher)
    consumer = DetectorConsumer(bus, core, settings.consumer_group, heap=Heap() if own_process else None)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        publisher.start()
        consumer.start()
        if launcher is not None:
            launcher.follow(core.job_finished)
        yield
        consumer.stop()
        publisher.stop()  # sends what is buffered and flushes the bus
        bus.close()
        if launcher is not None:
            launcher.close()

    app = FastAPI(title="mitiga drift detector", version=__version__, lifespan=lifespan)

    @app.get("/v2/health/live")
    async def live() -> dict[str, bool]:
        return {"live": True}

    @app.get("/v2/health/ready")
    async def ready() -> Response:
        return JSONResponse({"ready": consumer.alive}, status_code=200 if consumer.alive else 503)

    install_error_handlers(app)
    app.include_router(build_router(core, settings, store, state))
    # the retrain route's token is checked, and every body capped, before a byte of it is read
    app.add_middleware(BodyGuardMiddleware, limit=settings.max_request_bytes,
                       guards=[Guard(r"/v1/models/[^/]+/retrain", settings.admin_token)])

    exposition = Exposition(metrics.registry)

    @app.get("/metrics", include_in_schema=False)
    async def prometheus_metrics() -> Response:
        return Response(exposition.render(), media_type=CONTENT_TYPE_LATEST)

    app.state.core = core
    app.state.consumer = consumer
    app.state.publisher = publisher
    return app
