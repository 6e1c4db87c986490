"""What must happen before a request body is read: its credential checked, its size capped.

FastAPI reads and parses a JSON body before it runs a route's dependencies, so a bearer-token dependency alone
lets anyone make the server read (and hold) a body before being refused. This ASGI middleware runs first: for a
guarded path it checks the bearer token from the headers and answers 401/403 without reading a byte; then it
refuses a declared ``Content-Length`` over the limit (413) and caps a chunked body while it streams, so the app never
holds more than the limit, whatever the client sends.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.exceptions import HTTPException

from mitiga_core.errors import Unauthorized
from mitiga_core.http import bearer_error

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from pydantic import SecretStr
    from starlette.types import ASGIApp, Message, Receive, Scope, Send


@dataclass(frozen=True)
class Guard:
    """Requests whose path matches ``pattern`` need ``Bearer <token>`` (when ``required``; a required guard whose
    token is unset refuses every call), and may carry a body of at most ``limit`` bytes (None: the default)."""

    pattern: str
    token: SecretStr | Mapping[str, SecretStr] | None = None
    """One token, or several by name (any of them passes)."""
    kind: str = "admin"
    required: bool = True
    limit: int | None = None

    def matches(self, path: str) -> bool:
        return re.fullmatch(self.pattern, path) is not None


def too_large(length: bytes | None, limit: int) -> str | None:
    """Why a declared ``Content-Length`` is refused before the body is read (None when it is not)."""
    if length is not None and (not length.isdigit() or int(length) > limit):
        return f"request body is {length.decode('latin-1')} bytes; the limit is {limit}"
    return None


def over_limit(limit: int) -> str:
    return f"request body is over the limit of {limit} bytes"


class BodyGuardMiddleware:
    def __init__(self, app: ASGIApp, *, limit: int, guards: Sequence[Guard] = ()) -> None:
        self.app = app
        self.limit = limit
        self.guards = list(guards)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        guard = next((g for g in self.guards if g.matches(scope["path"])), None)
        headers = dict(scope["headers"])
        if guard is not None and guard.required:
            raw = headers.get(b"authorization")
            error = bearer_error(raw.decode("latin-1") if raw is not None else None, guard.token, guard.kind)
            if error is not None:
                extra = [(b"www-authenticate", b"Bearer")] if isinstance(error, Unauthorized) else []
                await _reply(send, error.status_code, str(error), extra)
                return
        limit = guard.limit if guard is not None and guard.limit is not None else self.limit
        declared = too_large(headers.get(b"content-length"), limit)
        if declared is not None:
            await _reply(send, 413, declared)
            return
        received = 0

        async def capped() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise HTTPException(413, over_limit(limit))
            return message

        await self.app(scope, capped, send)


async def _reply(send: Send, status: int, message: str, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close"), *(extra or [])]})
    await send({"type": "http.response.body", "body": body})
