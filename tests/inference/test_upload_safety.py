"""Uploads that would make the server unpack or allocate more than it should are refused before it does."""

from __future__ import annotations

import io
import shutil
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.flood import rss_bytes
from tests.inference.conftest import ADMIN, Service, start_service

pytestmark = pytest.mark.slow
MB = 1 << 20


@pytest.fixture(scope="module")
def service(reference_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    root = tmp_path_factory.mktemp("store")
    shutil.copytree(reference_store, root, dirs_exist_ok=True)
    svc = start_service(root, max_unpacked_bytes=16 * MB)
    yield svc
    svc.running.stop()


def bundle(service: Service, **members: bytes) -> bytes:
    """The shipped air-quality bundle, with members replaced or added."""
    folder = service.store.path("air", "1")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for member in ("model.keras", "manifest.json", "reference.npy"):
            archive.writestr(member, members.pop(member, None) or (folder / member).read_bytes())
        for member, data in members.items():
            archive.writestr(member, data)
    return buffer.getvalue()


def lying_npy(rows: int) -> bytes:
    """A .npy whose header declares ``rows`` x 12 float64 but which holds one row."""
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, {"descr": "<f8", "fortran_order": False, "shape": (rows, 12)})
    return out.getvalue() + np.zeros(12).tobytes()


def npz(**arrays: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in arrays.items():
            archive.writestr(f"{name}.npy", data)
    return out.getvalue()


@pytest.mark.parametrize(("members", "needle"), [
    ({"reference.npy": b"\0" * (64 * MB)}, "reference.npy unpacks to more than the limit"),  # a zip bomb
    ({"reference.npy": lying_npy(10**9)}, "reference.npy: its header declares 96000000000 bytes"),
    ({"validation.npz": npz(x=lying_npy(10**8), pred=lying_npy(1), y=lying_npy(1))}, "validation.npz/x.npy"),
    ({"model.keras": npz(weights=b"\0" * (64 * MB))}, "model.keras: weights.npy unpacks to more"),
])
def test_a_bundle_that_unpacks_or_allocates_too_much_is_refused_first(service: Service, members, needle) -> None:
    data = bundle(service, **members)
    assert len(data) < 2 * MB  # small on the wire
    before = rss_bytes()
    with service.client() as client:
        r = client.post("/v2/repository/models/bomb/upload", content=data, headers=ADMIN)
    grown = rss_bytes() - before
    assert r.status_code == 422 and needle in r.json()["error"], r.text
    assert service.store.list_versions("bomb") == []
    assert grown < 32 * MB, f"resident memory grew by {grown / MB:.0f} MB"


def test_an_honest_bundle_still_uploads(service: Service) -> None:
    with service.client() as client:
        r = client.post("/v2/repository/models/honest/upload", content=bundle(service), headers=ADMIN)
    assert r.status_code == 201, r.text
