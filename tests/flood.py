"""A client that streams a huge chunked body and stops as soon as the server answers: what a hostile client does,
without the test holding the body in memory."""

from __future__ import annotations

import select
import socket
from urllib.parse import urlsplit


def rss_bytes() -> int:
    """Resident memory of this process (the in-process servers under test included)."""
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


def flood(url: str, *, total: int = 1 << 30, chunk: int = 1 << 18, headers: dict[str, str] | None = None,
          content_length: bool = False) -> tuple[int | None, int]:
    """POST ``total`` bytes (chunked, or with a Content-Length when asked); returns the status the server answered
    with (None when it closed without one) and how many body bytes the client got to send before that."""
    parts = urlsplit(url)
    head = [f"POST {parts.path} HTTP/1.1", f"Host: {parts.hostname}", "Content-Type: application/json",
            f"Content-Length: {total}" if content_length else "Transfer-Encoding: chunked",
            *(f"{k}: {v}" for k, v in (headers or {}).items())]
    block = b" " * chunk
    frame = block if content_length else f"{chunk:x}\r\n".encode() + block + b"\r\n"
    sent = 0
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        while True:
            readable, writable, _ = select.select([sock], [sock] if sent < total else [], [], 30)
            if readable:
                reply = sock.recv(65536)
                return (int(reply.split(b" ", 2)[1]) if reply.startswith(b"HTTP/1.1") else None), sent
            if not writable:
                return None, sent
            try:
                sock.sendall(frame)
            except OSError:  # the server answered and closed while this chunk was on its way: read what came
                try:
                    reply = sock.recv(65536, socket.MSG_DONTWAIT)
                except OSError:
                    return None, sent
                return (int(reply.split(b" ", 2)[1]) if reply.startswith(b"HTTP/1.1") else None), sent
            sent += chunk
