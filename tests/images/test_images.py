"""The service images as the chart runs them: built by `make images` (podman, no Docker engine, no registry), started
with the chart's security settings (uid 10001, read-only root filesystem, every capability dropped, no privilege
escalation). Each answers its probes; the inference image serves the prediction the in-process model makes; each
image holds only its own service's dependencies."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.conftest import HARDENED, free_port, podman
from tests.inference.conftest import window_request

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.node]

@pytest.fixture
def models(reference_store: Path, tmp_path: Path) -> Path:
    """A copy of the reference store the container's user can read and write (the chart's volume, fsGroup 10001)."""
    root = tmp_path / "models"
    shutil.copytree(reference_store, root)
    for path in [root, *root.rglob("*")]:
        path.chmod(0o777 if path.is_dir() else 0o666)
    return root


class Container:
    def __init__(self, image: str, models: Path, env: dict[str, str], port: int) -> None:
        flags = [f"--env={k}={v}" for k, v in env.items()]
        self.id = podman("run", "-d", "--network", "host", *HARDENED, "-v", f"{models}:/models", *flags,
                         image).stdout.strip()
        self.url = f"http://127.0.0.1:{port}"
        self.exit_code: int | None = None

    def wait_ready(self, timeout_s: float = 180) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/v2/health/ready", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            state = podman("inspect", "--format", "{{.State.Status}}", self.id).stdout.strip()
            assert state == "running", f"container {state}: {self.logs()}"
            time.sleep(0.5)
        raise AssertionError(f"not ready in {timeout_s} s: {self.logs()}")

    def logs(self) -> str:
        return podman("logs", self.id, check=False).stderr[-3000:]

    def stop(self) -> int:
        """SIGTERM, as the kubelet sends it; the exit code."""
        if self.exit_code is None:
            podman("stop", "-t", "30", self.id, check=False)
            self.exit_code = int(podman("inspect", "--format", "{{.State.ExitCode}}", self.id).stdout.strip())
            podman("rm", "-f", self.id, check=False)
        return self.exit_code


@pytest.fixture
def run(images: dict[str, str], models: Path) -> Iterator[object]:
    started: list[Container] = []

    def start(service: str, env: dict[str, str], port: int) -> Container:
        container = Container(images[service], models, {"MITIGA_HOST": "127.0.0.1", "MITIGA_PORT": str(port), **env},
                              port)
        started.append(container)
        return container

    yield start
    for container in started:
        container.stop()


def test_the_inference_image_serves_the_in_process_prediction_read_only_as_a_non_root_user(run, models) -> None:  # type: ignore[no-untyped-def]
    from mitiga_core.store import FilesystemModelStore
    from mitiga_inference.runtime import CompiledModel

    port = free_port()
    container = run("inference", {"MITIGA_GRPC_PORT": str(free_port()), "MITIGA_MODELS": '["lstm"]'}, port)
    container.wait_ready()
    assert httpx.get(f"{container.url}/v2/health/live").status_code == 200
    body = window_request(4)
    answer = httpx.post(f"{container.url}/v2/models/lstm/infer", json=body, timeout=30)
    assert answer.status_code == 200, answer.text
    served = np.asarray(answer.json()["outputs"][0]["data"], np.float32)
    store = FilesystemModelStore(models)
    local = CompiledModel(store.path("lstm", store.champion("lstm")))
    x = np.asarray(body["inputs"][0]["data"], np.float32).reshape(4, 50)
    np.testing.assert_allclose(served, local(x)[:, 0], rtol=1e-5)
    user = podman("exec", container.id, "id", "-u").stdout.strip()
    assert user == "10001"
    assert container.stop() == 0  # SIGTERM: a clean exit


def test_the_detector_image_answers_its_probes_read_only_as_a_non_root_user(run) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    container = run("detector", {"MITIGA_LAUNCHER": "none"}, port)
    container.wait_ready()
    assert httpx.get(f"{container.url}/v2/health/live").status_code == 200
    assert "# HELP mitiga_drift_p_value" in httpx.get(f"{container.url}/metrics").text
    assert container.stop() == 0


def test_the_retrainer_image_runs_its_command_and_helm_read_only_as_a_non_root_user(images, models) -> None:  # type: ignore[no-untyped-def]
    helped = podman("run", "--rm", *HARDENED, "-v", f"{models}:/models", images["retrainer"], "--help")
    assert "--model" in helped.stdout
    helm = podman("run", "--rm", *HARDENED, "--entrypoint", "helm", images["retrainer"], "version", "--short")
    assert helm.stdout.startswith("v3.")
    chart = podman("run", "--rm", *HARDENED, "--entrypoint", "helm", images["retrainer"], "show", "chart",
                   "/opt/mitiga/chart")
    assert "name: mitiga" in chart.stdout


def test_the_console_image_shows_the_models_read_only_as_a_non_root_user(run, models) -> None:  # type: ignore[no-untyped-def]
    """The console with nothing else running: its pages still load, and say the other services are unreachable."""
    port = free_port()
    nowhere = f"http://127.0.0.1:{free_port()}"
    container = run("console", {"MITIGA_INFERENCE_URL": nowhere, "MITIGA_DETECTOR_URL": nowhere}, port)
    container.wait_ready(60)
    page = httpx.get(f"{container.url}/", timeout=30)
    assert page.status_code == 200 and ">lstm<" in page.text and ">air<" in page.text
    assert "detector unreachable" in page.text
    assert container.stop() == 0


@pytest.mark.parametrize(("service", "absent"), [
    ("inference", ["alibi_detect", "river", "kubernetes", "sklearn", "pandas", "typer"]),
    ("retrainer", ["alibi_detect", "river", "fastapi", "uvicorn", "multipart"]),
    ("detector", ["typer"]),  # TensorFlow (Alibi's backend) brings Keras, and Keras brings rich
    ("console", ["tensorflow", "keras", "alibi_detect", "river", "kubernetes", "grpc", "kafka", "typer"]),
])
def test_each_image_holds_only_its_own_services_dependencies(images, service: str, absent: list[str]) -> None:  # type: ignore[no-untyped-def]
    probe = ("import importlib.util, json, sys; "
             "print(json.dumps([m for m in sys.argv[1:] if importlib.util.find_spec(m) is not None]))")
    found = podman("run", "--rm", *HARDENED, "--entrypoint", "python", images[service], "-c", probe, *absent)
    assert json.loads(found.stdout) == []
    own = {"inference": "mitiga_inference", "retrainer": "mitiga_retrainer", "detector": "mitiga_detector",
           "console": "mitiga_console"}
    others = [m for m in own.values() if m != own[service]]
    found = podman("run", "--rm", *HARDENED, "--entrypoint", "python", images[service], "-c", probe, own[service],
                   *others)
    assert json.loads(found.stdout) == [own[service]]  # its own code, not the other services'


SOURCE_DIGEST = """
import hashlib, pathlib, sys
digest = hashlib.sha1()
for name in sys.argv[1:]:
    root = pathlib.Path(__import__(name).__file__).parent
    for path in sorted(root.rglob("*.py")):
        if "/pb/" not in path.as_posix():
            digest.update(path.relative_to(root.parent).as_posix().encode() + path.read_bytes())
print(digest.hexdigest())
"""


@pytest.mark.parametrize("service", ["inference", "detector", "retrainer", "console"])
def test_each_image_holds_the_code_of_this_checkout(images: dict[str, str], service: str) -> None:
    """The Python code each image runs is the repository's as it is now: an image built from stale layers (a cache
    that keyed a layer on something other than the sources) is caught here, not by a node test that times out."""
    import subprocess
    import sys

    packages = ["mitiga_core", f"mitiga_{service}"]
    here = subprocess.run([sys.executable, "-c", SOURCE_DIGEST, *packages], capture_output=True, text=True,
                          check=True).stdout.strip()
    there = podman("run", "--rm", *HARDENED, "--entrypoint", "python", images[service], "-c", SOURCE_DIGEST,
                   *packages).stdout.strip()
    assert there == here, f"the {service} image runs other code than this checkout: rebuild it (make images)"
