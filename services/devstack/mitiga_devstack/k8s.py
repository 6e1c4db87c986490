"""A Kubernetes test control plane on 127.0.0.1, from binaries built with Go by ``scripts/build-k8s.sh``:
etcd, kube-apiserver (RBAC on), kube-controller-manager, kube-scheduler, and kwok simulating one fake node whose
pods become Running and Ready (and whose Job pods complete). ``helm`` comes from the same build."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import time
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.error import URLError
from urllib.request import urlopen

import yaml

from mitiga_devstack.pki import Pki
from mitiga_devstack.process import ServerError, ServerProcess, free_port, run_script

if TYPE_CHECKING:
    from collections.abc import Sequence

FAKE_NODE = {
    "apiVersion": "v1", "kind": "Node",
    "metadata": {"name": "kwok-node-0", "annotations": {"node.alpha.kubernetes.io/ttl": "0",
                                                        "kwok.x-k8s.io/node": "fake"},
                 "labels": {"kubernetes.io/hostname": "kwok-node-0", "kubernetes.io/os": "linux",
                            "kubernetes.io/arch": "amd64", "type": "kwok"}},
    "status": {"allocatable": {"cpu": "32", "memory": "256Gi", "pods": "110"},
               "capacity": {"cpu": "32", "memory": "256Gi", "pods": "110"},
               },
}


BRIDGE_GATEWAY = "10.244.0.1"
"""The real node's pod network gateway (``node.RealNode``): pods reach the API server there."""
SERVICE_CIDR = "10.96.0.0/16"


def k8s_bin() -> Path:
    return Path(run_script("build-k8s.sh"))


class _Binary(ServerProcess):
    def __init__(self, name: str, data_dir: Path, args: list[str], port: int, ready_url: str | None = None,
                 context: ssl.SSLContext | None = None) -> None:
        super().__init__(data_dir, port)
        self.name = name
        self._args = args
        self._ready_url = ready_url
        self._context = context

    def command(self) -> Sequence[str]:
        return self._args

    def ready(self) -> bool:
        if not super().ready():
            return False
        if self._ready_url is None:
            return True
        try:
            with urlopen(self._ready_url, timeout=2, context=self._context) as response:  # noqa: S310 - loopback
                return bool(response.status == 200)
        except (URLError, OSError):
            return False


class _Unprobed(_Binary):
    """A component without a port to probe: ready once it has run for a moment."""

    def ready(self) -> bool:
        time.sleep(0.5)
        return self.proc is not None and self.proc.poll() is None


class ControlPlane:
    """``fake_node``: kwok simulates the node (the fast tests); without it, a real node joins (``node.RealNode``)."""

    def __init__(self, root: Path, *, fake_node: bool = True) -> None:
        self.root = root
        self.fake_node = fake_node
        self.bin = k8s_bin()
        self.pki = Pki(root / "pki")
        self.api_port, etcd_port, peer_port = free_port(), free_port(), free_port()
        self.server = f"https://127.0.0.1:{self.api_port}"
        pki = self.pki
        pki.issue("apiserver", "kube-apiserver", server=True,
                  hosts=("127.0.0.1", "localhost", "10.96.0.1", BRIDGE_GATEWAY, "kubernetes", "kubernetes.default",
                         "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"))
        pki.issue("admin", "mitiga-admin", org="system:masters")
        pki.issue("apiserver-kubelet", "kube-apiserver-kubelet-client", org="system:masters")
        pki.issue("controller-manager", "system:kube-controller-manager")
        pki.issue("scheduler", "system:kube-scheduler")
        self.kubeconfig = pki.kubeconfig("admin", self.server, root / "admin.kubeconfig")
        context = ssl.create_default_context(cafile=str(pki.cert("ca")))
        context.load_cert_chain(str(pki.cert("admin")), str(pki.key("admin")))
        b = self.bin
        self.etcd = _Binary("etcd", root / "etcd", [
            str(b / "etcd"), "--data-dir", str(root / "etcd" / "data"), "--name", "default",
            "--listen-client-urls", f"http://127.0.0.1:{etcd_port}",
            "--advertise-client-urls", f"http://127.0.0.1:{etcd_port}",
            "--listen-peer-urls", f"http://127.0.0.1:{peer_port}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer_port}",
            "--initial-cluster", f"default=http://127.0.0.1:{peer_port}", "--log-level", "warn",
            "--unsafe-no-fsync"], etcd_port, f"http://127.0.0.1:{etcd_port}/health")
        self.apiserver = _Binary("kube-apiserver", root / "apiserver", [
            str(b / "kube-apiserver"), f"--etcd-servers=http://127.0.0.1:{etcd_port}",
            f"--secure-port={self.api_port}", "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
            f"--tls-cert-file={pki.cert('apiserver')}", f"--tls-private-key-file={pki.key('apiserver')}",
            f"--client-ca-file={pki.cert('ca')}", "--authorization-mode=Node,RBAC",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={root / 'pki' / 'sa.pub'}",
            f"--service-account-signing-key-file={pki.key('sa')}", f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--endpoint-reconciler-type=none", "--v=0",
            # a real node's kubelet is reached on loopback only, by the name that resolves there
            "--kubelet-preferred-address-types=Hostname",
            f"--kubelet-client-certificate={pki.cert('apiserver-kubelet')}",
            f"--kubelet-client-key={pki.key('apiserver-kubelet')}"],
            self.api_port, f"{self.server}/readyz", context)
        self.apiserver.start_timeout_s = 120
        cm_config = pki.kubeconfig("controller-manager", self.server, root / "controller-manager.kubeconfig")
        self.controller_manager = _Unprobed("kube-controller-manager", root / "controller-manager", [
            str(b / "kube-controller-manager"), f"--kubeconfig={cm_config}", "--leader-elect=false",
            f"--service-account-private-key-file={pki.key('sa')}", f"--root-ca-file={pki.cert('ca')}",
            "--use-service-account-credentials=true", "--secure-port=0", "--controllers=*,-nodeipam",
            "--concurrent-deployment-syncs=5", "--v=0"], free_port())
        sched_config = pki.kubeconfig("scheduler", self.server, root / "scheduler.kubeconfig")
        self.scheduler = _Unprobed("kube-scheduler", root / "scheduler", [
            str(b / "kube-scheduler"), f"--kubeconfig={sched_config}", "--leader-elect=false", "--secure-port=0",
            "--v=0"], free_port())
        self.kwok = _Unprobed("kwok", root / "kwok", [
            str(b / "kwok"), f"--kubeconfig={self.kubeconfig}", f"--config={b / 'kwok-stages.yaml'}",
            "--manage-all-nodes=false",
            "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake", "--node-ip=10.0.1.1",
            "--cidr=10.0.0.0/16", f"--node-port={free_port()}"], free_port())

    @cached_property
    def version(self) -> str:
        """The control plane's Kubernetes version without the ``v`` (``1.34.4``), as its API server reports it:
        ``K8S_VERSION`` picks another at build time (``make matrix``)."""
        out = subprocess.run([str(self.bin / "kube-apiserver"), "--version"], capture_output=True, text=True,  # noqa: S603
                             check=True).stdout
        return out.split()[-1].removeprefix("v")

    @property
    def helm(self) -> Path:
        """The control plane's Helm, or ``MITIGA_HELM_BINARY`` (another Helm version, for ``make matrix``)."""
        override = os.environ.get("MITIGA_HELM_BINARY")
        return Path(override) if override else self.bin / "helm"

    @property
    def components(self) -> list[ServerProcess]:
        fake = [self.kwok] if self.fake_node else []
        return [self.etcd, self.apiserver, self.controller_manager, self.scheduler, *fake]

    def start(self) -> ControlPlane:
        for component in self.components:
            component.start()
        if self.fake_node:
            self._create_node()
        return self

    def _create_node(self) -> None:
        from kubernetes import client, config

        api: Any = client.CoreV1Api(config.new_client_from_config(str(self.kubeconfig)))
        deadline = time.monotonic() + 60
        while True:  # the default service account and namespace appear shortly after the API is ready
            try:
                api.create_node(FAKE_NODE)
                break
            except client.ApiException as exc:
                if exc.status == 409:
                    break
                if time.monotonic() > deadline:
                    raise ServerError(f"cannot create the fake node: {exc}") from exc
                time.sleep(0.5)
        def ready() -> bool:
            raw = json.loads(api.read_node("kwok-node-0", _preload_content=False).data)
            return any(c["type"] == "Ready" and c["status"] == "True" for c in raw["status"].get("conditions", []))

        while not ready():
            if time.monotonic() > deadline:
                raise ServerError("kwok did not make the fake node Ready")
            time.sleep(0.3)

    def stop(self) -> None:
        for component in reversed(self.components):
            component.stop(10)

    def write_kubeconfig_env(self) -> dict[str, str]:
        return {"KUBECONFIG": str(self.kubeconfig)}


def load_yaml_documents(text: str) -> list[dict[str, object]]:
    return [d for d in yaml.safe_load_all(text) if d]
