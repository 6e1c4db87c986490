"""A control plane with a real node running manifests/ and the chart in pods, for the benchmarks that need one
(time to mitigation, rollouts): the built images, a model store as the chart's volume, every process stopped after."""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

NAMESPACE = "mitiga"


@contextmanager
def node_release(root: Path, store: Path, release: str,
                 values: dict[str, str | int | None]) -> Iterator[tuple[Any, Any]]:
    """The chart installed as ``release`` with ``values`` (plus the images, Kafka and Redis): yields the control
    plane and an API client."""
    from kubernetes import client, config

    from mitiga_devstack.cluster import build_images, install_dependencies, install_release, real_node

    images = build_images()
    with real_node(root, images, NAMESPACE) as node:
        cp = node.cp
        api = config.new_client_from_config(str(cp.kubeconfig))
        core: Any = client.CoreV1Api(api)
        core.create_persistent_volume({
            "metadata": {"name": f"{release}-models"},
            "spec": {"capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteMany"],
                     "hostPath": {"path": str(store), "type": "Directory"},
                     "persistentVolumeReclaimPolicy": "Retain"}})
        deps = install_dependencies(cp, api, NAMESPACE, root / "manifests", images,
                                    scrape={"mitiga-detector": f"{release}-mitiga-detector:8081"})
        try:
            install_release(cp, NAMESPACE, release, {
                "image.inference": images["inference"], "image.detector": images["detector"],
                "image.retrainer": images["retrainer"], "image.pullPolicy": "Never",
                "config.kafkaBootstrap": deps.kafka_bootstrap, "config.redisUrl": deps.redis_url, **values})
            yield cp, api
        finally:
            deps.stop()


def in_root(prefix: str, run: Callable[[Path], dict[str, Any]]) -> dict[str, Any]:
    """``run`` in a temporary folder, removed after; ``BENCH_ROOT`` keeps the cluster's files there instead."""
    keep = os.environ.get("BENCH_ROOT")
    root = Path(keep) if keep else Path(tempfile.mkdtemp(prefix=prefix))
    try:
        return run(root)
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
