"""Shared fixtures: trained reference models in a temporary model store, and a real server on 127.0.0.1."""

from __future__ import annotations

import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Running:
    """A uvicorn server running an ASGI app on a free loopback port, in a thread."""

    url: str
    server: object
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True  # type: ignore[attr-defined]
        self.thread.join(30)


def serve(app: object) -> Running:
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on"))  # type: ignore[arg-type]
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("server did not start")
        time.sleep(0.05)
    return Running(f"http://127.0.0.1:{port}", server, thread)


@pytest.fixture(scope="session")
def reference_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model store with a small LSTM forecaster (Amazon 2000-2001) and an Air Quality regressor, 1-2 epochs."""
    from mitiga_core.bundle import save_bundle
    from mitiga_core.datasets import load_air_quality, load_prices
    from mitiga_core.modelzoo.training import train_forecaster, train_regressor
    from mitiga_core.store import FilesystemModelStore

    root = tmp_path_factory.mktemp("reference-store")
    store = FilesystemModelStore(root)
    lstm = train_forecaster(load_prices("amzn")["open"].loc["2000-01-01":"2001-12-31"], name="lstm", arch="lstm", epochs=1)
    air = train_regressor(load_air_quality().loc["2004-03-01":"2004-05-31"], name="air", epochs=2)
    for trained in (lstm, air):
        manifest = save_bundle(store, trained.manifest, trained.model, trained.reference, trained.training,
                         trained.validation)
        store.set_champion(manifest.name, manifest.version)
    return root


# --- real servers (integration tests) ---


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """One real Kafka broker (KRaft) for the session; tests use topics or groups of their own."""
    from mitiga_devstack.servers import KafkaServer

    server = KafkaServer(tmp_path_factory.mktemp("kafka")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """One real Redis (AOF on) for the session."""
    from mitiga_devstack.servers import RedisServer

    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def redis_db(redis_server):  # type: ignore[no-untyped-def]
    """The session's Redis, emptied for this test."""
    import redis

    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    return redis_server
