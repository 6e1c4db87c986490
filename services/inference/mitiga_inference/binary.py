"""The OIP binary tensor data extension over HTTP (KServe, Triton): the body is a JSON header of
``Inference-Header-Content-Length`` bytes followed by the tensors whose ``binary_data_size`` parameter is set, back to
back in the order of the header's inputs (or outputs): little-endian elements, a BYTES element as a 4-byte
little-endian length and then its bytes. tritonclient's HTTP client sends inputs this way by default and asks for
binary outputs (``binary_data_output``, or ``binary_data`` per output)."""

from __future__ import annotations

import struct
from typing import Any

from mitiga_core.errors import InvalidInput

HEADER = "Inference-Header-Content-Length"


def split(body: bytes, header_length: str | None) -> tuple[bytes, memoryview]:
    """The JSON header and the binary part of a request body (all JSON when the header is absent)."""
    if header_length is None:
        return body, memoryview(b"")
    try:
        length = int(header_length)
    except ValueError:
        raise InvalidInput(f"{HEADER}: {header_length!r} is not a number of bytes") from None
    if not 0 < length <= len(body):
        raise InvalidInput(f"{HEADER}: a {length}-byte JSON header does not fit the {len(body)}-byte body")
    return body[:length], memoryview(body)[length:]


class BinaryReader:
    """Hands each binary tensor its bytes, in order; :meth:`finish` refuses bytes no tensor claimed."""

    def __init__(self, data: memoryview) -> None:
        self._data, self._at = data, 0

    def take(self, size: Any, where: str) -> bytes:
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise InvalidInput(f"{where}: parameters.binary_data_size must be a whole number of bytes, not {size!r}")
        left = len(self._data) - self._at
        if size > left:
            raise InvalidInput(f"{where}: binary_data_size is {size} bytes but only {left} binary bytes are left in "
                               "the body")
        chunk = bytes(self._data[self._at:self._at + size])
        self._at += size
        return chunk

    def finish(self) -> None:
        if self._at != len(self._data):
            raise InvalidInput(f"body: {len(self._data) - self._at} bytes after the last binary tensor")


def check_bytes_elements(raw: bytes, count: int, where: str) -> None:
    """A BYTES tensor's framing: exactly ``count`` length-prefixed elements filling ``raw``."""
    at = 0
    for i in range(count):
        if at + 4 > len(raw):
            raise InvalidInput(f"{where}: BYTES element {i} has no 4-byte length ({len(raw)} bytes for {count} "
                               "elements)")
        (length,) = struct.unpack_from("<I", raw, at)
        at += 4 + length
        if at > len(raw):
            raise InvalidInput(f"{where}: BYTES element {i} of {length} bytes runs past the tensor's "
                               f"{len(raw)} bytes")
    if at != len(raw):
        raise InvalidInput(f"{where}: {len(raw) - at} bytes after the tensor's {count} BYTES elements")
