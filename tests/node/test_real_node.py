"""The images run as real containers under a real kubelet: a Job's container runs to completion and its log comes
back through the API server; the kubelet probes the inference pod's readiness endpoint; a Service routes through
kube-proxy to it and the answer equals the in-process prediction; a pod reaches the API server through the
``kubernetes`` Service with its ServiceAccount token."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.conftest import wait_for
from tests.inference.conftest import window_request
from tests.node.conftest import NAMESPACE, describe

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.node]

SECURITY = {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001, "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"}}
TMP = {"name": "tmp", "emptyDir": {}}
TMP_MOUNT = {"name": "tmp", "mountPath": "/tmp"}


def _wait(what: str, check: Any, timeout_s: float = 180, explain: Any = None) -> Any:
    return wait_for(check, timeout_s, what, explain=explain)


def _job(name: str, image: str, command: list[str]) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"backoffLimit": 0, "template": {"spec": {
        "restartPolicy": "Never",
        "containers": [{"name": "main", "image": image, "imagePullPolicy": "Never", "command": command,
                        "securityContext": SECURITY, "volumeMounts": [TMP_MOUNT]}],
        "volumes": [TMP]}}}}


def _finished_pod(node: Any, api: Any, job: str) -> Any:
    from kubernetes import client

    def done() -> Any:
        pods = client.CoreV1Api(api).list_namespaced_pod(NAMESPACE, label_selector=f"job-name={job}").items
        return next((p for p in pods if p.status.phase in ("Succeeded", "Failed")), None)
    return _wait(f"job {job}", done, explain=lambda: describe(node, api))


def test_a_job_container_runs_to_completion_and_its_log_comes_back_through_the_api_server(
        real_node, node_api, images) -> None:  # type: ignore[no-untyped-def]
    from kubernetes import client

    batch, core = client.BatchV1Api(node_api), client.CoreV1Api(node_api)
    batch.create_namespaced_job(NAMESPACE, _job("helm-version", images["retrainer"], ["helm", "version", "--short"]))
    pod = _finished_pod(real_node, node_api, "helm-version")
    log = core.read_namespaced_pod_log(pod.metadata.name, NAMESPACE)  # API server -> kubelet -> containerd
    assert pod.status.phase == "Succeeded", log
    assert log.startswith("v3.")
    assert pod.status.pod_ip.startswith("10.244.0.")  # an address from the bridge network, not the host's
    _wait("job complete", lambda: (batch.read_namespaced_job_status("helm-version", NAMESPACE).status.succeeded or 0)
          == 1)


def test_a_pod_reaches_the_api_server_through_the_kubernetes_service(real_node, node_api, images) -> None:  # type: ignore[no-untyped-def]
    from kubernetes import client

    batch, core = client.BatchV1Api(node_api), client.CoreV1Api(node_api)
    probe = ("from kubernetes import client, config; config.load_incluster_config(); "
             "print(client.VersionApi().get_code().git_version)")
    batch.create_namespaced_job(NAMESPACE, _job("in-cluster", images["retrainer"], ["python", "-c", probe]))
    pod = _finished_pod(real_node, node_api, "in-cluster")
    log = core.read_namespaced_pod_log(pod.metadata.name, NAMESPACE)
    assert pod.status.phase == "Succeeded", log
    assert log.strip() == f"v{real_node.cp.version}"


def test_the_kubelet_probes_the_inference_pod_and_a_service_routes_to_it(
        real_node, node_api, images, reference_store: Path, tmp_path_factory: pytest.TempPathFactory) -> None:  # type: ignore[no-untyped-def]
    from kubernetes import client

    from mitiga_core.store import FilesystemModelStore
    from mitiga_inference.runtime import CompiledModel

    models = tmp_path_factory.mktemp("node-models") / "models"
    shutil.copytree(reference_store, models)
    for path in [models, *models.rglob("*")]:
        path.chmod(0o777 if path.is_dir() else 0o666)
    labels = {"app": "inference"}
    probe = {"httpGet": {"path": "/v2/health/ready", "port": 8080}, "periodSeconds": 2, "failureThreshold": 90}
    client.AppsV1Api(node_api).create_namespaced_deployment(NAMESPACE, {
        "metadata": {"name": "inference"},
        "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": {
            "metadata": {"labels": labels},
            "spec": {"containers": [{
                "name": "inference", "image": images["inference"], "imagePullPolicy": "Never",
                "env": [{"name": "MITIGA_MODELS", "value": '["lstm"]'}, {"name": "MITIGA_HOST", "value": "0.0.0.0"}],
                "ports": [{"containerPort": 8080}], "readinessProbe": probe,
                "livenessProbe": {"httpGet": {"path": "/v2/health/live", "port": 8080}, "periodSeconds": 5,
                                  "failureThreshold": 60},
                "securityContext": SECURITY,
                "volumeMounts": [TMP_MOUNT, {"name": "models", "mountPath": "/models"}]}],
                "volumes": [TMP, {"name": "models", "hostPath": {"path": str(models), "type": "Directory"}}]}}}})
    core = client.CoreV1Api(node_api)
    service = core.create_namespaced_service(NAMESPACE, {
        "metadata": {"name": "inference"},
        "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": 8080}]}})

    def ready() -> bool:
        pods = core.list_namespaced_pod(NAMESPACE, label_selector="app=inference").items
        return any(c.type == "Ready" and c.status == "True" for p in pods for c in p.status.conditions or [])

    _wait("the kubelet to find the inference pod ready", ready, 240, explain=lambda: describe(real_node, node_api))
    url = f"http://{service.spec.cluster_ip}"  # through kube-proxy's rules, to the pod on the bridge
    body = window_request(3)
    answer = _wait("the Service to route", lambda: _post(f"{url}/v2/models/lstm/infer", body), 60)
    served = np.asarray(answer["outputs"][0]["data"], np.float32)
    store = FilesystemModelStore(models)
    local = CompiledModel(store.path("lstm", store.champion("lstm")))
    x = np.asarray(body["inputs"][0]["data"], np.float32).reshape(3, 50)
    np.testing.assert_allclose(served, local(x)[:, 0], rtol=1e-5)


def _post(url: str, body: dict[str, Any]) -> dict[str, Any] | None:
    try:
        answer = httpx.post(url, json=body, timeout=10)
    except httpx.HTTPError:
        return None
    return answer.json() if answer.status_code == 200 else None


def test_a_service_address_kube_proxy_did_not_translate_never_leaves_the_node(real_node, node_api) -> None:  # type: ignore[no-untyped-def]
    """A connection to a Service address without kube-proxy's rules (a Service created a moment ago, or none) is
    refused on the node. Routed out, it reached this machine's egress proxy, which accepts any address, answers 404
    and keeps the connection alive: Prometheus' scrapes of a Service it dialled a moment too early stayed 404."""
    import ipaddress
    import socket

    from kubernetes import client

    from mitiga_devstack.k8s import SERVICE_CIDR

    used = {s.spec.cluster_ip for s in client.CoreV1Api(node_api).list_service_for_all_namespaces().items}
    free = next(str(a) for a in reversed(list(ipaddress.ip_network(SERVICE_CIDR).hosts())) if str(a) not in used)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((free, 8081), timeout=10).close()
