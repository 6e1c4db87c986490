"""Memory before authentication: a client without a token cannot make the server read, or hold, its body."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.flood import flood, rss_bytes
from tests.inference.conftest import Service, start_service

pytestmark = pytest.mark.slow  # serves the reference models

GB = 1 << 30
MB = 1 << 20


@pytest.fixture(scope="module")
def big_limits(reference_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    root = tmp_path_factory.mktemp("store")
    shutil.copytree(reference_store, root, dirs_exist_ok=True)
    svc = start_service(root, max_upload_bytes=512 * MB, feedback_token="labels")
    yield svc
    svc.running.stop()


@pytest.mark.parametrize("path", ["/v2/repository/models/lstm/upload", "/v2/models/lstm/feedback"])
def test_a_tokenless_gigabyte_is_refused_before_it_is_read(big_limits: Service, path: str) -> None:
    before = rss_bytes()
    tries = [flood(big_limits.url + path, total=GB) for _ in range(3)]
    grown = rss_bytes() - before
    # answered at once, from the headers (a reply can be lost to the connection's reset under load: one in three
    # must be read)
    assert 401 in [status for status, _ in tries] and {status for status, _ in tries} <= {401, None}, tries
    assert all(sent < 64 * MB for _, sent in tries)  # the server stopped reading: the body never got through
    assert grown < 32 * MB, f"resident memory grew by {grown / MB:.0f} MB"


def test_an_authorised_chunked_upload_is_capped_while_it_streams(big_limits: Service) -> None:
    with big_limits.client() as client:
        small = client.post("/v2/repository/models/lstm/upload", content=b"x" * 2048,
                            headers={"Authorization": "Bearer s3cret", "Content-Type": "application/octet-stream"})
    assert small.status_code == 422  # read, then refused as no model: the body got through
    status, sent = flood(big_limits.url + "/v2/models/lstm/infer", total=GB)  # the 256 kB JSON limit
    assert status == 413 and sent < 64 * MB
