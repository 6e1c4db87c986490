"""A minimal Alertmanager webhook receiver: every notification is appended as one JSON line to a file and kept
in memory. ``python -m mitiga_devstack.webhook --port 9095 --out alerts.jsonl`` runs it on its own."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Annotated, Any

import typer


class WebhookReceiver:
    def __init__(self, port: int = 0, out: Path | None = None, host: str = "127.0.0.1") -> None:
        self.notifications: list[dict[str, Any]] = []
        self._out = out
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                try:
                    receiver._record(json.loads(body))
                except ValueError:
                    self.send_response(400)
                else:
                    self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.host = host
        self._server = ThreadingHTTPServer((host, port), Handler)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="webhook", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/alerts"

    def _record(self, notification: dict[str, Any]) -> None:
        with self._lock:
            self.notifications.append(notification)
            if self._out is not None:
                with self._out.open("a") as f:
                    f.write(json.dumps(notification) + "\n")

    def alerts(self) -> list[dict[str, Any]]:
        """Every alert of every notification received so far."""
        with self._lock:
            return [a for n in self.notifications for a in n.get("alerts", [])]

    def start(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def main(port: Annotated[int, typer.Option()] = 9095,
         out: Annotated[Path, typer.Option()] = Path("alerts.jsonl")) -> None:
    receiver = WebhookReceiver(port, out).start()
    try:
        receiver._thread.join()
    except KeyboardInterrupt:
        receiver.stop()


if __name__ == "__main__":
    typer.run(main)
