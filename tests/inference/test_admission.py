"""Admission control: a flood past the model's bounded queue is refused at once with 429 and Retry-After (gRPC:
RESOURCE_EXHAUSTED), counted; everything admitted is answered; nothing is a 5xx."""

from __future__ import annotations

import asyncio
import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest

from tests.inference.conftest import Service, start_service, window_request

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def small_queue(reference_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    root = tmp_path_factory.mktemp("store")
    shutil.copytree(reference_store, root, dirs_exist_ok=True)
    svc = start_service(root, max_queued_rows=300, max_request_bytes=8 << 20, publish_events=False, grpc_port=0)
    yield svc
    svc.running.stop()


async def _flood(url: str, requests: int) -> tuple[Counter[int], set[str]]:
    body = window_request(256)
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        responses = await asyncio.gather(*[client.post("/v2/models/lstm/infer", json=body) for _ in range(requests)])
    return Counter(r.status_code for r in responses), {r.headers.get("retry-after", "") for r in responses
                                                       if r.status_code == 429}


def test_a_flood_past_the_queue_gets_429_with_retry_after_and_the_rest_is_served(small_queue: Service) -> None:
    statuses, retry_after = asyncio.run(_flood(small_queue.url, 64))
    assert set(statuses) == {200, 429}, statuses  # some admitted, some refused at once, none failed
    assert retry_after == {"1"}
    with small_queue.client() as client:
        metrics = client.get("/metrics").text
        assert client.post("/v2/models/lstm/infer", json=window_request(1)).status_code == 200  # and it recovers
    assert f'mitiga_inference_errors_total{{code="429",model="lstm",version="1"}} {float(statuses[429])}' in metrics


def test_over_grpc_a_flood_is_resource_exhausted(small_queue: Service) -> None:
    from mitiga_inference.pb.inference import grpc_predict_v2_pb2_grpc as oip_grpc
    from tests.inference.test_grpc import window_tensor

    port = small_queue.app.state.grpc.port
    request, _ = window_tensor(256, id="")

    async def flood() -> Counter[str]:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = oip_grpc.GRPCInferenceServiceStub(channel)

            async def one() -> str:
                try:
                    await stub.ModelInfer(request, timeout=60)
                except grpc.aio.AioRpcError as exc:
                    return exc.code().name
                return "OK"

            return Counter(await asyncio.gather(*[one() for _ in range(64)]))

    codes = asyncio.run(flood())
    assert set(codes) == {"OK", "RESOURCE_EXHAUSTED"}, codes
