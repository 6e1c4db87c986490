"""A real Kubernetes control plane (built from the Go module proxy, RBAC on, kwok nodes) with the chart installed,
and clients that act as the chart's ServiceAccounts.

A plugin (``tests/conftest.py``), not a conftest, so that the chart's tests and the attacks on it
(``tests/security``) share one control plane: both suites run on one pytest-xdist worker (``tests/tiers.py``)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

CHART = Path(__file__).resolve().parents[2] / "charts" / "mitiga"
NAMESPACE = "mitiga"
RELEASE = "demo"


def helm(control_plane: Any, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    from mitiga_devstack.cluster import HELM_ENV

    done = subprocess.run([str(control_plane.helm), "--kubeconfig", str(control_plane.kubeconfig), *args],
                          capture_output=True, text=True, timeout=600, env={**os.environ, **HELM_ENV})
    if check and done.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from kubernetes import client, config, utils

    from mitiga_devstack.k8s import ControlPlane

    cp = ControlPlane(tmp_path_factory.mktemp("k8s")).start()
    api = config.new_client_from_config(str(cp.kubeconfig))
    for crd in sorted((cp.bin / "crds").glob("*.yaml")):
        utils.create_from_yaml(api, str(crd))
    client.CoreV1Api(api).create_namespace({"metadata": {"name": NAMESPACE}})
    # a volume for the chart's model-store claim (no provisioner on this control plane)
    client.CoreV1Api(api).create_persistent_volume({
        "metadata": {"name": "models"},
        "spec": {"capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteMany"],
                 "hostPath": {"path": "/var/lib/mitiga-test"}, "persistentVolumeReclaimPolicy": "Retain"}})
    yield cp
    cp.stop()


@pytest.fixture(scope="session")
def admin(control_plane):  # type: ignore[no-untyped-def]
    from kubernetes import config

    return config.new_client_from_config(str(control_plane.kubeconfig))


@pytest.fixture(scope="session")
def release(control_plane):  # type: ignore[no-untyped-def]
    """The chart installed as release ``demo`` in namespace ``mitiga``, waited for."""
    helm(control_plane, "install", RELEASE, str(CHART), "--namespace", NAMESPACE, "--wait", "--timeout", "180s",
         "--set", "models.lstm.version=1", "--set", "retrainer.rollout.timeout=60s")
    return RELEASE


def service_account_token(admin: Any, name: str, namespace: str = NAMESPACE) -> str:
    from kubernetes import client

    response = client.CoreV1Api(admin).create_namespaced_service_account_token(
        name, namespace, {"spec": {"expirationSeconds": 3600}}, _preload_content=False)
    return str(json.loads(response.data)["status"]["token"])


def client_as(control_plane: Any, admin: Any, service_account: str) -> Any:
    """An API client authenticated with the ServiceAccount's token (what its pods get)."""
    from kubernetes import client

    configuration = client.Configuration()
    configuration.host = control_plane.server
    configuration.ssl_ca_cert = str(control_plane.pki.cert("ca"))
    configuration.api_key = {"authorization": f"Bearer {service_account_token(admin, service_account)}"}
    return client.ApiClient(configuration)


def kubeconfig_as(control_plane: Any, admin: Any, service_account: str, path: Path) -> Path:
    config = {
        "apiVersion": "v1", "kind": "Config", "current-context": "sa",
        "clusters": [{"name": "c", "cluster": {"server": control_plane.server,
                                                "certificate-authority": str(control_plane.pki.cert("ca"))}}],
        "users": [{"name": "sa", "user": {"token": service_account_token(admin, service_account)}}],
        "contexts": [{"name": "sa", "context": {"cluster": "c", "user": "sa", "namespace": NAMESPACE}}],
    }
    path.write_text(yaml.safe_dump(config))
    return path


def raw(response: Any) -> Any:
    return json.loads(response.data)
