"""The inference request's own path: ``POST /v2/models/{name}[/versions/{version}]/infer`` answered in front of
the FastAPI app's middleware and router.

A 1-row request spent more than half of the event loop's time in the framework (six middleware layers, the router,
the request object) and not in the model (docs/benchmarks.md, P1). :class:`InferenceApp` answers it with the same
code as the REST route (:func:`answer`), under the same rules: the body capped at ``MITIGA_MAX_REQUEST_BYTES``,
errors as ``{"error": ...}`` with their status (:func:`~mitiga_core.http.error_response`). While the pod drains, and for
every other request, the FastAPI app answers as before.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from fastapi import FastAPI
from starlette.exceptions import HTTPException

from mitiga_core.bodyguard import over_limit, too_large
from mitiga_core.http import error_response
from mitiga_inference import binary, codec

if TYPE_CHECKING:
    from starlette.types import Receive, Scope, Send

    from mitiga_inference.dataplane import DataPlane
    from mitiga_inference.drain import Drain

INFER_PATH = re.compile(r"/v2/models/([^/]+)(?:/versions/([^/]+))?/infer")
_BINARY = binary.HEADER.lower().encode()


async def answer(plane: DataPlane, name: str, version: str | None, body: bytes, binary_length: str | None,
                 authorization: str | None) -> tuple[bytes, str, dict[str, str]]:
    """An OIP request body (JSON tensors, or the binary tensor extension when ``binary_length`` is given) in; the
    answer's body, media type and extra headers out."""
    header, tensors = binary.split(body, binary_length)
    wire = codec.parse(header)
    asked = replace(codec.infer_request(wire, tensors), caller=plane.caller(authorization))
    content, outputs = codec.encode_response(await plane.infer(name, version, asked), wire)
    if not outputs:
        return content, "application/json", {}
    return content + outputs, "application/octet-stream", {binary.HEADER: str(len(content))}


@dataclass
class FastPath:
    plane: DataPlane
    drain: Drain
    limit: int

    async def __call__(self, name: str, version: str | None, scope: Scope, receive: Receive, send: Send) -> None:
        length = authorization = binary_length = None
        for key, value in scope["headers"]:
            if key == b"content-length":
                length = value
            elif key == b"authorization":
                authorization = value.decode("latin-1")
            elif key == _BINARY:
                binary_length = value.decode("latin-1")
        try:
            declared = too_large(length, self.limit)
            if declared is not None:
                raise HTTPException(413, declared)
            chunks, received, more = [], 0, True
            while more:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                chunk = message.get("body", b"")
                received += len(chunk)
                if received > self.limit:
                    raise HTTPException(413, over_limit(self.limit))
                chunks.append(chunk)
                more = message.get("more_body", False)
            content, media, extra = await answer(self.plane, name, version, b"".join(chunks), binary_length,
                                                 authorization)
        except Exception as exc:
            response = error_response(exc)
            if response is None:
                raise  # a bug: the server answers 500 and logs it
            await response(scope, receive, send)
            return
        headers = [(b"content-type", media.encode()), (b"content-length", str(len(content)).encode()),
                   *((k.lower().encode(), v.encode()) for k, v in extra.items())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": content})


class InferenceApp(FastAPI):
    """The inference service's FastAPI app, with :class:`FastPath` in front for the infer route (set ``fast``)."""

    fast: FastPath | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        fast = self.fast
        if fast is not None and scope["type"] == "http" and scope["method"] == "POST" and not fast.drain.draining:
            match = INFER_PATH.fullmatch(scope["path"])
            if match is not None:
                await fast(match[1], match[2], scope, receive, send)
                return
        await super().__call__(scope, receive, send)
