"""The chart on the real node, as an operator installs it: the built images, Kafka and Redis reachable from the pods
(here real servers on the pod network's gateway), the model store on a volume. The kubelet decides readiness from
the services' own probes, `helm test` really calls the readiness endpoint, and a client's requests through the
inference Service become events the detector (a container too) consumes from Kafka."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.inference.conftest import window_request
from tests.node.conftest import NAMESPACE

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CHART = Path(__file__).resolve().parents[2] / "charts" / "mitiga"
RELEASE = "demo"


def helm(node: Any, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(node.cp.bin / "helm"), "--kubeconfig", str(node.cp.kubeconfig), *args],
                          capture_output=True, text=True, timeout=900, check=False)
    if check:
        assert done.returncode == 0, f"helm {' '.join(args)}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def release(real_node, node_api, images, reference_store: Path,  # type: ignore[no-untyped-def]
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from kubernetes import client

    from mitiga_devstack.k8s import BRIDGE_GATEWAY
    from mitiga_devstack.servers import KafkaServer, RedisServer

    root = tmp_path_factory.mktemp("chart-on-node")
    kafka = KafkaServer(root / "kafka", host=BRIDGE_GATEWAY).start()
    redis = RedisServer(root / "redis", host=BRIDGE_GATEWAY).start()
    models = root / "models"
    shutil.copytree(reference_store, models)
    for path in [models, *models.rglob("*")]:
        path.chmod(0o777 if path.is_dir() else 0o666)
    client.CoreV1Api(node_api).create_persistent_volume({
        "metadata": {"name": "node-models"},
        "spec": {"capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteMany"],
                 "hostPath": {"path": str(models), "type": "Directory"},
                 "persistentVolumeReclaimPolicy": "Retain"}})
    values = {
        "image.inference": images["inference"], "image.detector": images["detector"],
        "image.retrainer": images["retrainer"], "image.pullPolicy": "Never",
        "config.kafkaBootstrap": kafka.bootstrap, "config.redisUrl": redis.url,
        "models.lstm.version": "1",
        # two CPUs on this node: room for a rollout's surge pod and a retrain Job beside the others
        "inference.resources.requests.cpu": "100m", "detector.resources.requests.cpu": "100m",
        "retrainer.resources.requests.cpu": "500m",
    }
    sets = [arg for key, value in values.items() for arg in ("--set-string", f"{key}={value}")]
    sets += ["--set", "inference.replicas=1"]
    try:
        helm(real_node, "install", RELEASE, str(CHART), "--namespace", NAMESPACE, "--wait", "--timeout", "600s",
             *sets)
        yield {"kafka": kafka, "redis": redis, "models": models}
    finally:
        helm(real_node, "uninstall", RELEASE, "--namespace", NAMESPACE, "--wait", "--timeout", "120s", check=False)
        redis.stop()
        kafka.stop()


def _service_url(node_api: Any, component: str) -> str:
    from kubernetes import client

    service = client.CoreV1Api(node_api).read_namespaced_service(f"{RELEASE}-mitiga-{component}", NAMESPACE)
    return f"http://{service.spec.cluster_ip}:{service.spec.ports[0].port}"


def test_helm_test_reaches_the_readiness_endpoint_from_a_pod(real_node, release) -> None:  # type: ignore[no-untyped-def]
    tested = helm(real_node, "test", RELEASE, "--namespace", NAMESPACE, "--timeout", "300s", "--logs")
    assert "Phase:          Succeeded" in tested.stdout
    assert "/v2/health/ready 200" in tested.stdout  # the test pod's own log: it really asked


def test_requests_through_the_inference_service_reach_the_detector_through_kafka(node_api, release) -> None:  # type: ignore[no-untyped-def]
    inference, detector = _service_url(node_api, "inference"), _service_url(node_api, "detector")
    sent = 0
    with httpx.Client(timeout=30) as http:
        for i in range(10):
            answer = http.post(f"{inference}/v2/models/lstm/infer", json=window_request(8, id=f"node-{i}"))
            assert answer.status_code == 200, answer.text
            sent += 8
        deadline = time.monotonic() + 120
        while True:
            metrics = http.get(f"{detector}/metrics").text
            processed = [line for line in metrics.splitlines()
                         if line.startswith('mitiga_detector_events_total{type="InferenceEvent"}')]
            if processed and float(processed[0].split()[-1]) >= 10:
                break
            assert time.monotonic() < deadline, f"the detector saw {processed} of 10 events"
            time.sleep(1)
