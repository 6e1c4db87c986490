"""A control plane with a real node (containerd, runc, kubelet, kube-proxy, a bridge CNI network) instead of kwok,
and the images of `make images` imported into it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

NAMESPACE = "mitiga"


@pytest.fixture(scope="session")
def real_node(tmp_path_factory: pytest.TempPathFactory, images: dict[str, str]) -> Iterator[Any]:
    from mitiga_devstack.cluster import real_node as running

    with running(tmp_path_factory.mktemp("node"), images, NAMESPACE) as node:
        yield node


@pytest.fixture(scope="session")
def node_api(real_node):  # type: ignore[no-untyped-def]
    from kubernetes import config

    return config.new_client_from_config(str(real_node.cp.kubeconfig))


def describe(node: Any, api: Any, namespace: str = NAMESPACE) -> str:
    """What an operator would look at when a pod does not get going: each pod's phase and container states, the
    namespace's recent events, the disk, and the tails of the kubelet's and containerd's logs."""
    import shutil

    from kubernetes import client

    core: Any = client.CoreV1Api(api)
    lines = []
    for pod in core.list_namespaced_pod(namespace).items:
        states = [f"{s.name}: {s.state.waiting or s.state.terminated or 'running'}"
                  for s in pod.status.container_statuses or []]
        lines.append(f"pod {pod.metadata.name} {pod.status.phase} {pod.status.reason or ''} {states}")
    events = sorted(core.list_namespaced_event(namespace).items,
                    key=lambda e: str(e.last_timestamp or e.event_time or ""))
    lines += [f"event {e.involved_object.kind}/{e.involved_object.name} {e.reason}: {e.message}" for e in events[-30:]]
    usage = shutil.disk_usage(node.root)
    lines.append(f"disk free under the node: {usage.free / 2**30:.1f} GiB of {usage.total / 2**30:.1f} GiB")
    for name, process in (("kubelet", node.kubelet), ("containerd", node.containerd)):
        tail = process.log_path.read_text(errors="replace")[-2500:] if process.log_path.exists() else ""
        lines.append(f"--- {name} log tail ---\n{tail}")
    return "\n".join(lines)
