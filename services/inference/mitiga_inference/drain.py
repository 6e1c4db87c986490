"""Leaving a rollout without a reset: the pod is told it is going (SIGUSR1, from the chart's preStop hook) before
SIGTERM, and from then on sends its clients away.

A client of a keep-alive connection to a pod that is stopping may send its next request in the instant the server
closes the idle connection (on SIGTERM): the request is lost with a reset. So while draining, every HTTP response
carries ``Connection: close`` (the server closes the connection after it; the client's next request opens a new
one, through the Service, to a pod that stays) and readiness answers 503. The preStop hook then waits
(``inference.preStopSeconds``) before the kubelet sends SIGTERM: a client that sends at least once in that time
holds no connection to this pod when it stops listening. gRPC clients are sent away by the server's GOAWAY on
SIGTERM (HTTP/2 announces it; no request is lost)."""

from __future__ import annotations

import logging
import signal
from typing import TYPE_CHECKING

from starlette.responses import JSONResponse

if TYPE_CHECKING:
    import asyncio

    from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)
DRAIN_SIGNAL = signal.SIGUSR1
READY_PATH = "/v2/health/ready"


class Drain:
    def __init__(self) -> None:
        self.draining = False
        self._listening = False

    def start(self) -> None:
        if not self.draining:
            self.draining = True
            log.info("draining: clients are sent away (Connection: close), readiness fails")

    def listen(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start draining on SIGUSR1 (the preStop hook's ``kill -USR1 1``): only a process's main thread can
        take signals, so a server embedded in another thread (tests, notebooks) is drained by ``start()``."""
        try:
            loop.add_signal_handler(DRAIN_SIGNAL, self.start)
            self._listening = True
        except (RuntimeError, ValueError):
            log.debug("not the main thread: the drain signal is not handled")

    def close(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._listening:
            loop.remove_signal_handler(DRAIN_SIGNAL)


class DrainMiddleware:
    """Pure ASGI: nothing is added to a request's path while the pod is not draining but one attribute read."""

    def __init__(self, app: ASGIApp, drain: Drain) -> None:
        self.app, self.drain = app, drain

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.drain.draining:
            await self.app(scope, receive, send)
            return
        if scope["path"] == READY_PATH:
            response = JSONResponse({"ready": False, "draining": True}, status_code=503,
                                    headers={"connection": "close"})
            await response(scope, receive, send)
            return

        async def closing(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"connection"]
                message = {**message, "headers": [*headers, (b"connection", b"close")]}
            await send(message)

        await self.app(scope, receive, closing)
