"""Shared fixtures: trained reference models in a temporary model store, and a real server on 127.0.0.1."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mitiga_devstack.process import CACHE as DEVSTACK_CACHE
from mitiga_devstack.process import PORT_RANGE, free_port

__all__ = ["free_port"]  # tests import it from here

pytest_plugins = ["tests.tiers", "tests.k8s.cluster"]

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
PORTS = (20000, 29999)
"""Where the servers the tests start take their ports: below the kernel's ephemeral range (32768 and up), where an
outgoing connection could take a port between its choice and its use, and below Kubernetes' NodePorts (30000 and
up, the real node's). Each pytest-xdist worker gets a slice of its own."""


def pytest_configure(config: pytest.Config) -> None:
    if PORT_RANGE in os.environ:  # the developer's own choice
        return
    if getattr(config.option, "numprocesses", None) and not hasattr(config, "workerinput"):
        return  # the xdist controller starts no server; its workers each take their slice
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw"))
    size = (PORTS[1] - PORTS[0] + 1) // workers
    first = PORTS[0] + worker * size
    os.environ[PORT_RANGE] = f"{first}-{first + size - 1}"


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
    from mitiga_research.datasets import load_air_quality, load_prices
    from mitiga_research.modelzoo.training import train_forecaster, train_regressor

    from mitiga_core.bundle import save_bundle
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


# --- images (make images: podman, no Docker engine, no registry) ---

REPO = Path(__file__).resolve().parents[1]
IMAGE_CACHE = DEVSTACK_CACHE / "images"
# what the chart's securityContext and podSecurityContext ask of every container
HARDENED = ["--read-only", "--user", "10001:10001", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
            "--tmpfs", "/tmp:rw,size=256m"]


def podman(*args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CONTAINERS_CONF": str(IMAGE_CACHE / "containers.conf")}
    done = subprocess.run(["podman", *args], capture_output=True, text=True, env=env, timeout=timeout, check=False)
    if check:
        assert done.returncode == 0, f"podman {' '.join(args)}: {done.stderr[-2000:]}"
    return done


@pytest.fixture(scope="session")
def images() -> dict[str, str]:
    """The service images, the dependency stand-ins and the pod sandbox image, built (or found in podman's storage,
    keyed by their inputs) by the project's script."""
    from mitiga_devstack.cluster import build_images

    return build_images()


def bundle_zip(folder: Path) -> bytes:
    """A stored version's bundle as an upload zip (model, manifest, reference)."""
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for member in ("model.keras", "manifest.json", "reference.npy"):
            archive.write(folder / member, member)
    return buffer.getvalue()


def wait_for(check: Any, timeout_s: float, what: str, every_s: float = 0.5, explain: Any = None) -> Any:
    """Poll ``check`` until it returns something true, and return that; fail after ``timeout_s`` saying what was
    awaited (and ``explain()``: what an operator would look at)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every_s)
    pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}" + (f"\n{explain()}" if explain else ""))
