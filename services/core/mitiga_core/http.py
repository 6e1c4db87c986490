"""HTTP conventions shared by the services: errors as ``{"error": message}`` with the error's status, and the
bearer-token guard of admin endpoints."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated

from fastapi import FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from mitiga_core.errors import Forbidden, MitigaError, Overloaded, Unauthorized
from mitiga_core.tokens import bearer_name

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from pydantic import SecretStr


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def error_response(exc: Exception) -> Response | None:
    """The ``{"error": message}`` answer for an error the services raise on purpose (None for any other: a bug)."""
    if isinstance(exc, MitigaError):
        headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthorized) else None
        if isinstance(exc, Overloaded):
            headers = {"Retry-After": str(exc.retry_after_s)}
        return _error(exc.status_code, str(exc), headers)
    if isinstance(exc, RequestValidationError):
        parts = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
            parts.append(f"{loc}: {err.get('msg')}" if loc else str(err.get("msg")))
        return _error(422, "; ".join(parts))
    if isinstance(exc, StarletteHTTPException):
        return _error(exc.status_code, str(exc.detail), dict(exc.headers or {}))
    return None


def install_error_handlers(app: FastAPI) -> None:
    async def on_error(_: Request, exc: Exception) -> Response:
        response = error_response(exc)
        assert response is not None
        return response

    for kind in (MitigaError, RequestValidationError, StarletteHTTPException):
        app.add_exception_handler(kind, on_error)


def bearer_error(authorization: str | None, token: SecretStr | Mapping[str, SecretStr] | None,
                 kind: str = "admin") -> MitigaError | None:
    """Why ``authorization`` does not carry ``Bearer <token>`` (one of the named ``token``s), or None when it does."""
    tokens = token if isinstance(token, Mapping) else {"": token} if token is not None else {}
    if not tokens:
        return Forbidden(f"{kind} endpoints are disabled: set MITIGA_{kind.upper()}_TOKEN")
    if not authorization:
        return Unauthorized("missing bearer token in the Authorization header")
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "bearer" or not value:
        return Unauthorized("the Authorization header must be 'Bearer <token>'")
    if bearer_name(value, tokens) is None:
        return Forbidden(f"invalid {kind} token")
    return None



def admin_guard(token: SecretStr | None, kind: str = "admin") -> Callable[..., Awaitable[None]]:
    """A dependency that requires ``Authorization: Bearer <token>`` (``kind`` names the token in the errors)."""

    async def check(authorization: Annotated[str | None, Header()] = None) -> None:
        error = bearer_error(authorization, token, kind)
        if error is not None:
            raise error

    return check
