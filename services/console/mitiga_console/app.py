"""The console's app factory."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from mitiga_console import forecast, html, pages
from mitiga_console.upstream import Upstream
from mitiga_core import __version__
from mitiga_core.errors import MitigaError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from mitiga_console.settings import ConsoleSettings
    from mitiga_core.store import ModelStore


def create_app(settings: ConsoleSettings, *, store: ModelStore) -> FastAPI:
    upstream = Upstream(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        upstream.close()

    app = FastAPI(title="mitiga console", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None)

    @app.get("/v2/health/live", include_in_schema=False)
    async def live() -> dict[str, bool]:
        return {"live": True}

    @app.get("/v2/health/ready", include_in_schema=False)
    async def ready() -> dict[str, bool]:
        return {"ready": True}  # every page degrades on its own when a service it reads is down

    async def on_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, MitigaError)
        return HTMLResponse(html.layout("Error", html.error(str(exc))), status_code=exc.status_code)

    app.add_exception_handler(MitigaError, on_error)
    app.include_router(pages.build_router(settings, store, upstream))
    app.include_router(forecast.build_router(settings, store, upstream))
    app.state.upstream = upstream
    return app
