from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from mitiga_core.bus import InMemoryBus
from mitiga_core.store import FilesystemModelStore
from tests.conftest import Running, serve

ADMIN = {"Authorization": "Bearer s3cret"}


@dataclass
class Service:
    url: str
    bus: InMemoryBus
    store: FilesystemModelStore
    app: Any
    running: Running

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30)


def start_service(store_root: Path, bus: InMemoryBus | None = None, **overrides: Any) -> Service:
    from mitiga_inference.app import create_app
    from mitiga_inference.settings import InferenceSettings

    limits = {"max_request_bytes": 256 * 1024, "max_upload_bytes": 4 * 1024 * 1024}
    settings = InferenceSettings(model_store_path=store_root, admin_token="s3cret", **(limits | overrides))
    bus = bus or InMemoryBus()
    store = FilesystemModelStore(store_root)
    app = create_app(settings, bus=bus, store=store)
    running = serve(app)
    service = Service(running.url, bus, store, app, running)
    with service.client() as client:
        deadline = time.monotonic() + 60
        while client.get("/v2/health/ready").status_code != 200:
            assert time.monotonic() < deadline, "service did not become ready"
            time.sleep(0.1)
    return service


@pytest.fixture
def store_copy(reference_store: Path, tmp_path: Path) -> Path:
    """A private copy of the reference store, for tests that add versions."""
    target = tmp_path / "store"
    shutil.copytree(reference_store, target)
    return target


def service_on_a_copy(reference_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """A running service on its own copy of the reference store (for module-scoped fixtures)."""
    root = tmp_path_factory.mktemp("store")
    shutil.copytree(reference_store, root, dirs_exist_ok=True)
    svc = start_service(root)
    yield svc
    svc.running.stop()


@pytest.fixture(scope="module")
def service(reference_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    yield from service_on_a_copy(reference_store, tmp_path_factory)


@pytest.fixture
def client(service: Service) -> Iterator[httpx.Client]:
    with service.client() as c:
        yield c


def window_request(rows: int, window: int = 50, start: float = 20.0, **extra: Any) -> dict[str, Any]:
    data = [start + (i % 7) * 0.5 + r for r in range(rows) for i in range(window)]
    return {"inputs": [{"name": "window", "shape": [rows, window], "datatype": "FP32", "data": data}], **extra}
