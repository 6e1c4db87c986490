"""The service as an operator runs it: a process configured from the environment, JSON logs, SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from mitiga_inference.pb.inference import grpc_predict_v2_pb2_grpc as oip_grpc
from tests.conftest import free_port
from tests.inference.conftest import window_request
from tests.inference.test_grpc import window_tensor

pytestmark = pytest.mark.slow


def start_process(store_copy: Path, tmp_path: Path, **extra: str) -> tuple[subprocess.Popen[bytes], str, int, Any]:
    """``python -m mitiga_inference`` configured from the environment, once it is ready."""
    port, grpc_port = free_port(), free_port()
    env = {**os.environ, **extra, "MITIGA_MODEL_STORE_PATH": str(store_copy), "MITIGA_PORT": str(port),
           "MITIGA_GRPC_PORT": str(grpc_port), "MITIGA_HOST": "127.0.0.1", "MITIGA_MODELS": '["lstm"]',
           "TF_CPP_MIN_LOG_LEVEL": "3"}
    log = (tmp_path / "stderr.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "mitiga_inference"], env=env, stderr=log, stdout=log)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                return proc, url, grpc_port, log
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            log.close()
            raise AssertionError(f"service did not start:\n{(tmp_path / 'stderr.log').read_text()[-3000:]}")
        time.sleep(0.2)


def test_sigterm_finishes_in_flight_requests_and_exits_cleanly(store_copy: Path, tmp_path: Path) -> None:
    """REST and gRPC load while SIGTERM arrives: every call answered is a success; after it, calls are refused."""
    proc, url, grpc_port, log = start_process(store_copy, tmp_path)
    try:
        statuses: list[int] = []
        stop = threading.Event()

        def load() -> None:
            with httpx.Client(base_url=url, timeout=30) as client:
                while not stop.is_set():
                    try:
                        statuses.append(client.post("/v2/models/lstm/infer", json=window_request(64)).status_code)
                    except httpx.TransportError:
                        return  # the listener closed: no response, not a failed one

        grpc_codes: list[str] = []

        def grpc_load() -> None:
            request, _ = window_tensor(64, id="")  # the server chooses each call's id
            with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
                stub = oip_grpc.GRPCInferenceServiceStub(channel)
                while not stop.is_set():
                    try:
                        stub.ModelInfer(request, timeout=30)
                        grpc_codes.append("OK")
                    except grpc.RpcError as exc:
                        grpc_codes.append(exc.code().name)
                        return

        threads = [threading.Thread(target=load) for _ in range(3)] + [threading.Thread(target=grpc_load)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        # uvicorn drains, runs the lifespan shutdown, then re-raises the signal: the exit is by SIGTERM
        assert proc.wait(30) in (0, -signal.SIGTERM)
        stop.set()
        for t in threads:
            t.join(10)
        assert statuses and set(statuses) == {200}
        # the gRPC calls in flight finished; the next one found the server gone, never an error. gRPC core reports
        # a call that reached the server but was never handed to a handler before the stop as CANCELLED, not
        # UNAVAILABLE (grpc/grpc#41785; on a busy machine one sometimes waits there): either way it was not run.
        assert grpc_codes.count("OK") >= 1 and all(c == "OK" for c in grpc_codes[:-1]), grpc_codes
        assert grpc_codes[-1] in ("OK", "UNAVAILABLE", "CANCELLED"), grpc_codes
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    lines = [line for line in (tmp_path / "stderr.log").read_text().splitlines() if line.startswith("{")]
    records = [json.loads(line) for line in lines]
    assert any(r["message"] == "model serving" and r["model"] == "lstm" for r in records)
    done = [r for r in records if r["message"] == "shutdown complete"]
    assert len(done) == 1 and done[0]["events_undelivered"] == 0
    assert all({"time", "level", "service", "message"} <= set(r) for r in records)
    assert records[0]["service"] == "mitiga-inference"
    assert not [r for r in records if "/infer" in r["message"]]  # no access log unless asked for


def test_sigusr1_sends_keep_alive_clients_away_before_sigterm_and_fails_readiness(store_copy: Path,
                                                                                 tmp_path: Path) -> None:
    """The chart's preStop hook sends SIGUSR1 before the kubelet's SIGTERM: from then on every response closes its
    connection and readiness fails, so a keep-alive client holds no connection to the pod when it stops listening
    (the reset a rollout's steady client met, issue 30); requests are still answered meanwhile."""
    proc, url, _, log = start_process(store_copy, tmp_path, MITIGA_ACCESS_LOG="true")
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            first = client.post("/v2/models/lstm/infer", json=window_request(4))
            assert first.status_code == 200 and first.headers.get("connection") != "close"
            proc.send_signal(signal.SIGUSR1)
            deadline = time.monotonic() + 10
            while (ready := httpx.get(f"{url}/v2/health/ready", timeout=5)).status_code == 200:
                assert time.monotonic() < deadline, "readiness never failed"
                time.sleep(0.1)
            assert ready.status_code == 503 and ready.json() == {"ready": False, "draining": True}
            for _ in range(3):  # each on a new connection, each answered, each closed after its answer
                answer = client.post("/v2/models/lstm/infer", json=window_request(4))
                assert answer.status_code == 200 and answer.headers["connection"] == "close", answer.headers
        assert proc.poll() is None  # still serving: SIGTERM ends it
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) in (0, -signal.SIGTERM)
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    records = [json.loads(line) for line in (tmp_path / "stderr.log").read_text().splitlines()
               if line.startswith("{")]
    assert sum(r["message"].startswith("draining") for r in records) == 1
    assert sum("POST /v2/models/lstm/infer" in r["message"] for r in records) == 4  # MITIGA_ACCESS_LOG
