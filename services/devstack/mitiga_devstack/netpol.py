"""NetworkPolicies enforced on the real node: kube-router's NetworkPolicy controller alone (no routing, no service
proxy), built from the module proxy by ``scripts/build-k8s.sh``.

The node's bridge CNI ignores NetworkPolicies; kube-router turns each into iptables rules and ipsets on this host.
Traffic between pods of the bridge passes the host's FORWARD chain (br_netfilter is on here:
``net.bridge.bridge-nf-call-iptables = 1``), traffic from a pod to the host its INPUT chain, so both are filtered;
traffic from the host itself (the kubelet's probes, the tests' clients) is allowed, as NetworkPolicy asks. A pod the
controller has not seen yet is denied where only allowed peers may go: it takes about a second after a pod gets its
address. Only the controller runs: the advisory on kube-router 2.1.0 (GHSA-phqm-jgc3-qf8g) is in its service proxy."""

from __future__ import annotations

import contextlib
import subprocess
from typing import TYPE_CHECKING, Any

from mitiga_devstack.k8s import _Binary
from mitiga_devstack.process import free_port

if TYPE_CHECKING:
    from pathlib import Path

    from mitiga_devstack.k8s import ControlPlane

USER = "system:kube-router"
READS = {"": ["pods", "namespaces", "nodes", "services", "endpoints"], "discovery.k8s.io": ["endpointslices"],
         "networking.k8s.io": ["networkpolicies"]}
"""What the controller watches (its informers start for all of them)."""


class PolicyAgent(_Binary):
    def __init__(self, root: Path, control_plane: ControlPlane, node_name: str) -> None:
        self.cp = control_plane
        root.mkdir(parents=True, exist_ok=True)
        control_plane.pki.issue("kube-router", USER)
        kubeconfig = control_plane.pki.kubeconfig("kube-router", control_plane.server, root / "kube-router.kubeconfig")
        health = free_port()
        super().__init__("kube-router", root, [
            str(control_plane.bin / "kube-router"), f"--kubeconfig={kubeconfig}", f"--hostname-override={node_name}",
            "--run-firewall=true", "--run-router=false", "--run-service-proxy=false", "--enable-cni=false",
            "--enable-ipv6=false", f"--health-port={health}", "--v=1"],
            health, f"http://127.0.0.1:{health}/healthz")

    def grant(self) -> None:
        """Read access for the controller's user (and events, which it records)."""
        from kubernetes import client, config

        api = config.new_client_from_config(str(self.cp.kubeconfig))
        rbac: Any = client.RbacAuthorizationV1Api(api)
        rules = [{"apiGroups": [group], "resources": resources, "verbs": ["get", "list", "watch"]}
                 for group, resources in READS.items()]
        rules.append({"apiGroups": ["", "events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]})
        name = "mitiga-test:kube-router"
        for create, body in (
                (rbac.create_cluster_role, {"metadata": {"name": name}, "rules": rules}),
                (rbac.create_cluster_role_binding, {
                    "metadata": {"name": name},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
                    "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": USER}]})):
            try:
                create(body)
            except client.ApiException as exc:
                if exc.status != 409:
                    raise


def drop_ipsets() -> None:
    """The controller's ipsets (``KUBE-SRC-…``, ``KUBE-DST-…``, ``kube-router-…``), once no rule refers to them
    (after the node's ``KUBE-*`` chains are dropped): its own cleanup (``--cleanup-config``) crashes in 2.1.0."""
    with contextlib.suppress(OSError):
        listed = subprocess.run(["ipset", "list", "-n"], capture_output=True, text=True, check=False).stdout  # noqa: S607
        for name in listed.split():
            if name.startswith(("KUBE-", "kube-router")):
                subprocess.run(["ipset", "destroy", name], capture_output=True, check=False)  # noqa: S603, S607
