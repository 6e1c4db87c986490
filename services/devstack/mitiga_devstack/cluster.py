"""``manifests/`` and the chart on a real node, installed as an operator would: Kafka, Redis, Prometheus and
Alertmanager as pods (from their upstream images, or the stand-ins of ``manifests/images`` where no registry serves
them), their volumes bound to PersistentVolumes made beforehand (a cluster without a provisioner), then the chart
with the built service images, reaching Kafka and Redis by their Service names through the cluster's DNS.

Alertmanager's webhook receiver (``mitiga-alert-webhook:9095`` in manifests/alertmanager) is a process on this host
behind a Service without a selector."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import yaml

from mitiga_devstack.k8s import BRIDGE_GATEWAY, ControlPlane
from mitiga_devstack.process import REPO
from mitiga_devstack.webhook import WebhookReceiver

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from mitiga_devstack.node import RealNode

MANIFESTS = REPO / "manifests"
CHART = REPO / "charts" / "mitiga"
UPSTREAM = {"kafka": "apache/kafka", "redis": "redis", "prometheus": "prom/prometheus",
            "alertmanager": "prom/alertmanager"}
"""The images manifests/ names, by the name of their stand-in (scripts/build-images.sh)."""
CLAIMS = {"data-kafka-0": "5Gi", "data-redis-0": "1Gi"}
"""The StatefulSets' claims: without a provisioner, each is bound to a volume made for it."""
WEBHOOK_PORT = 9095


class InstallError(RuntimeError):
    pass


def build_images() -> dict[str, str]:
    """Every image the real node runs, by name (``inference``, ..., ``kafka``, ..., ``pause``): built by
    scripts/build-images.sh, or found in podman's storage (keyed by their inputs)."""
    built = subprocess.run(["bash", str(REPO / "scripts" / "build-images.sh")], capture_output=True, text=True,  # noqa: S603, S607
                           env={**os.environ, "PY": sys.executable}, check=False, timeout=3600)
    if built.returncode != 0:
        raise InstallError(f"scripts/build-images.sh:\n{built.stderr[-3000:]}")
    return {ref.rsplit("/", 1)[-1].split(":")[0].removeprefix("mitiga-"): ref for ref in built.stdout.split()}


def create_namespace(api: Any, namespace: str, timeout_s: float = 60) -> None:
    """The namespace, once its default ServiceAccount exists (pods need it)."""
    from kubernetes import client

    core: Any = client.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": namespace}})
    deadline = time.monotonic() + timeout_s
    while not core.list_namespaced_service_account(namespace, field_selector="metadata.name=default").items:
        if time.monotonic() > deadline:
            raise InstallError(f"no default ServiceAccount in {namespace}")
        time.sleep(0.3)


HELM_ENV = {"HELM_DRIVER": "configmap"}
"""How the chart is installed: release records in ConfigMaps (the retrainer may read no Secret)."""


def helm(cp: ControlPlane, *args: str, check: bool = True, timeout_s: float = 900) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(cp.helm), "--kubeconfig", str(cp.kubeconfig), *args],  # noqa: S603
                          capture_output=True, text=True, timeout=timeout_s, check=False,
                          env={**os.environ, **HELM_ENV})
    if check and done.returncode != 0:
        raise InstallError(f"helm {' '.join(args)}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done


@dataclass
class Dependencies:
    """What :func:`install_dependencies` put on the cluster, and the webhook that receives the alerts."""

    namespace: str
    webhook: WebhookReceiver
    volumes: list[str] = field(default_factory=list)

    kafka_bootstrap: str = "kafka:9092"
    redis_url: str = "redis://redis:6379/0"

    def stop(self) -> None:
        self.webhook.stop()


def _static_prometheus(targets: dict[str, str]) -> str:
    """manifests/prometheus's configuration with the mitiga Services as static targets (job name -> host:port)
    instead of Kubernetes service discovery, which Debian's build of Prometheus (the stand-in) leaves out."""
    config = yaml.safe_load((MANIFESTS / "prometheus" / "prometheus.yml").read_text())
    config["scrape_configs"] = [{"job_name": job, "static_configs": [{"targets": [target]}]}
                                for job, target in targets.items()]
    return yaml.safe_dump(config, sort_keys=False)


def _overlay(root: Path, namespace: str, images: dict[str, str], rules: str | None,
             scrape: dict[str, str] | None) -> Path:
    """A kustomization over manifests/: this namespace, the stand-in images where given, and (for tests) the
    Prometheus rules and scrape targets replaced."""
    root.mkdir(parents=True, exist_ok=True)
    overlay: dict[str, Any] = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "resources": [os.path.relpath(MANIFESTS, root)], "namespace": namespace,
        "images": [{"name": upstream, "newName": images[name].rsplit(":", 1)[0],
                    "newTag": images[name].rsplit(":", 1)[1]}
                   for name, upstream in UPSTREAM.items() if name in images],
    }
    files = []
    if rules is not None:
        (root / "rules.yaml").write_text(rules)
        files.append("mitiga-rules.yaml=rules.yaml")
    if scrape is not None:
        (root / "prometheus.yml").write_text(_static_prometheus(scrape))
        files.append("prometheus.yml=prometheus.yml")
    if files:
        overlay["configMapGenerator"] = [{"name": "prometheus", "behavior": "merge", "files": files}]
    (root / "kustomization.yaml").write_text(yaml.safe_dump(overlay, sort_keys=False))
    return root


def _volumes(core: Any, namespace: str, root: Path) -> list[str]:
    names = []
    for claim, size in CLAIMS.items():
        path = root / claim
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(0o777)  # the pods' users (1000, 999) own nothing here; fsGroup does not apply to hostPath
        name = f"{namespace}-{claim}"
        core.create_persistent_volume({
            "metadata": {"name": name},
            "spec": {"capacity": {"storage": size}, "accessModes": ["ReadWriteOnce"],
                     "hostPath": {"path": str(path), "type": "Directory"},
                     "persistentVolumeReclaimPolicy": "Retain",
                     "claimRef": {"namespace": namespace, "name": claim}}})
        names.append(name)
    return names


def _webhook_service(core: Any, discovery: Any, namespace: str, webhook: WebhookReceiver) -> None:
    core.create_namespaced_service(namespace, {
        "metadata": {"name": "mitiga-alert-webhook"},
        "spec": {"ports": [{"name": "http", "port": WEBHOOK_PORT, "targetPort": webhook.port}]}})
    discovery.create_namespaced_endpoint_slice(namespace, {
        "metadata": {"name": "mitiga-alert-webhook-host",
                     "labels": {"kubernetes.io/service-name": "mitiga-alert-webhook",
                                "endpointslice.kubernetes.io/managed-by": "mitiga-devstack"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [BRIDGE_GATEWAY], "conditions": {"ready": True}}],
        "ports": [{"name": "http", "port": webhook.port, "protocol": "TCP"}]})


def install_dependencies(cp: ControlPlane, api: Any, namespace: str, root: Path, images: dict[str, str],
                         rules: str | None = None, scrape: dict[str, str] | None = None,
                         timeout_s: float = 600) -> Dependencies:
    """``kustomize build`` of manifests/ (through an overlay), applied to ``namespace``; returns once every pod of
    it is ready. ``scrape`` (job name -> Service host:port) replaces Kubernetes service discovery, for the Prometheus
    stand-in."""
    from kubernetes import client, utils

    core = client.CoreV1Api(api)
    webhook = WebhookReceiver(host=BRIDGE_GATEWAY).start()
    deps = Dependencies(namespace, webhook)
    try:
        deps.volumes = _volumes(core, namespace, root / "volumes")
        _webhook_service(core, client.DiscoveryV1Api(api), namespace, webhook)
        if "prometheus" in images and scrape is None:
            scrape = {}  # the stand-in cannot read the Kubernetes service discovery configuration at all
        overlay = _overlay(root / "overlay", namespace, images, rules, scrape)
        built = subprocess.run([str(cp.bin / "kustomize"), "build", "--load-restrictor",  # noqa: S603
                                "LoadRestrictionsNone", str(overlay)], capture_output=True, text=True, check=False)
        if built.returncode != 0:
            raise InstallError(f"kustomize build: {built.stderr}")
        utils.create_from_yaml(api, yaml_objects=list(yaml.safe_load_all(built.stdout)), namespace=namespace)
        wait_ready(core, namespace, "app.kubernetes.io/part-of=mitiga-dev", len(UPSTREAM), timeout_s)
    except BaseException:
        webhook.stop()
        raise
    return deps


def wait_ready(core: Any, namespace: str, selector: str, count: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        pods = core.list_namespaced_pod(namespace, label_selector=selector).items
        ready = [p for p in pods if p.status.container_statuses
                 and all(s.ready for s in p.status.container_statuses)]
        if len(ready) >= count:
            return
        if time.monotonic() > deadline:
            states = [(p.metadata.name, p.status.phase, [str(s.state) for s in p.status.container_statuses or []])
                      for p in pods]
            raise InstallError(f"{len(ready)} of {count} pods ready ({selector}): {states}")
        time.sleep(1)


def service_url(api: Any, namespace: str, name: str) -> str:
    """``http://<cluster IP>:<first port>``: kube-proxy routes it from this host too."""
    from kubernetes import client

    service: Any = client.CoreV1Api(api).read_namespaced_service(name, namespace)
    return f"http://{service.spec.cluster_ip}:{service.spec.ports[0].port}"


def install_release(cp: ControlPlane, namespace: str, release: str, values: dict[str, str | int | None],
                    timeout_s: int = 600) -> None:
    """``helm install --wait`` of the chart: string values with ``--set-string``, numbers with ``--set``, and
    ``None`` removes a key of the chart's defaults."""
    sets = [arg for key, value in values.items()
            for arg in ("--set-string" if isinstance(value, str) else "--set",
                        f"{key}={'null' if value is None else value}")]
    helm(cp, "install", release, str(CHART), "--namespace", namespace, "--wait", "--timeout", f"{timeout_s}s", *sets)


@contextmanager
def real_node(root: Path, images: dict[str, str], namespace: str) -> Iterator[RealNode]:
    """A control plane with a real node joined, the service and stand-in images imported, ``namespace`` created;
    every process stopped after (the control plane too when the node cannot even be built)."""
    from kubernetes import config

    from mitiga_devstack.node import RealNode

    cp = ControlPlane(root / "control-plane", fake_node=False).start()
    try:
        node = RealNode(cp, root / "node", images["pause"])
    except BaseException:
        cp.stop()
        raise
    try:
        node.start()
        for image in ("inference", "detector", "retrainer", *UPSTREAM):
            node.import_image(images[image])
        create_namespace(config.new_client_from_config(str(cp.kubeconfig)), namespace)
        yield node
    finally:
        node.stop()
        cp.stop()
