"""Fuzzing as a standing suite: schemathesis generates requests from the live OpenAPI schema of the inference and
detector services (a fixed seed; ``MITIGA_FUZZ_EXAMPLES`` per operation, more in ``make fuzz``). No answer may be
a 5xx, and the process stays up."""

from __future__ import annotations

import os
import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from mitiga_core.bus import InMemoryBus
from mitiga_core.state import InMemoryStateStore
from mitiga_core.store import FilesystemModelStore
from tests.conftest import serve
from tests.inference.conftest import Service, start_service

pytestmark = pytest.mark.slow
EXAMPLES = int(os.environ.get("MITIGA_FUZZ_EXAMPLES", "100"))
TOKEN = {"Authorization": "Bearer s3cret"}
CASES: Counter[str] = Counter()


@pytest.fixture(scope="module")
def inference(reference_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    root = tmp_path_factory.mktemp("store")
    shutil.copytree(reference_store, root, dirs_exist_ok=True)
    service = start_service(root, max_upload_bytes=64 * 1024)
    yield service
    service.running.stop()


@pytest.fixture(scope="module")
def detector(reference_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from mitiga_detector.app import create_app
    from mitiga_detector.settings import DetectorSettings
    from tests.detector.conftest import RecordingLauncher

    root = tmp_path_factory.mktemp("detector-store")
    shutil.copytree(reference_store, root, dirs_exist_ok=True)
    app = create_app(DetectorSettings(admin_token="s3cret", model_store_path=root, engine="scipy"),
                     bus=InMemoryBus(), store=FilesystemModelStore(root), state=InMemoryStateStore(),
                     launcher=RecordingLauncher())
    running = serve(app)
    yield running.url
    running.stop()


def _check(case: Any, base_url: str, service: str) -> None:
    # half the cases carry the admin token, so the admin routes are fuzzed past their guard too
    headers = TOKEN if CASES[service] % 2 else None
    response = case.call(base_url=base_url, headers=headers)
    CASES[service] += 1
    assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.status_code} {response.text}"
    assert httpx.get(f"{base_url}/v2/health/live", timeout=10).status_code == 200


def _fuzz(base_url: str, service: str) -> None:
    """Every operation of the live schema, with requests that follow it and requests that break it."""
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert operations
    for operation in operations:
        cases = st.one_of(operation.as_strategy(GenerationMode.POSITIVE),
                          operation.as_strategy(GenerationMode.NEGATIVE))

        @settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=cases)
        def run(case: Any) -> None:
            _check(case, base_url, service)

        run()


def test_inference_never_answers_5xx(inference: Service) -> None:
    _fuzz(inference.url, "inference")


def test_the_detector_never_answers_5xx(detector: str) -> None:
    _fuzz(detector, "detector")


def test_the_suite_ran_at_least_a_thousand_cases() -> None:
    """Runs after the fuzz tests above (file order): the standing suite is as large as it says."""
    if not CASES:
        pytest.skip("run the whole module to count its cases")
    print(f"fuzz cases: {dict(CASES)}")
    assert sum(CASES.values()) >= min(1000, 10 * EXAMPLES), CASES
