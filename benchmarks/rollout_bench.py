"""Rollouts that drop nothing (issue 30): clients with keep-alive connections at a steady rate through consecutive
Helm rollouts of the inference Deployment on a real node, counting every failed request.

A control plane with a real node runs manifests/ and the chart (two inference replicas, the research LSTM). Four
clients, each on one keep-alive connection to the inference Service, send a 1-row request every 25 ms. The bench
then runs ``ROLLOUTS`` upgrades one after the other (``helm upgrade --reuse-values --wait``, each changing the
inference configuration, so every pod is replaced), and reports the failed requests, and the p50/p99 latency during
the rollouts beside the p50/p99 outside them.

Goal: 0 failed requests. Needs ``make infra`` and the images (built here when missing). ``BENCH_ROOT`` keeps the
cluster's files; ``ROLLOUTS`` sets the count (10).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from common import lstm_store, write_report

NAMESPACE = "mitiga"
RELEASE = "rollout"
ROLLOUTS = int(os.environ.get("ROLLOUTS", "10"))
CLIENTS = 4
PERIOD_S = 0.025
WINDOW = 50


class Client(threading.Thread):
    """One keep-alive connection, a request every PERIOD_S: (start, seconds, error or None) for each."""

    def __init__(self, url: str, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.url, self.stop = url, stop
        self.calls: list[tuple[float, float, str | None]] = []
        self.data = np.linspace(30, 40, WINDOW).round(3).tolist()

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30,
                          limits=httpx.Limits(max_connections=1, max_keepalive_connections=1)) as http:
            while not self.stop.is_set():
                body = {"id": uuid.uuid4().hex, "inputs": [
                    {"name": "window", "shape": [1, WINDOW], "datatype": "FP32", "data": self.data}]}
                start = time.monotonic()
                try:
                    answer = http.post("/v2/models/lstm/infer", json=body)
                    error = None if answer.status_code == 200 else f"{answer.status_code}: {answer.text[:200]}"
                except httpx.HTTPError as exc:
                    error = f"{type(exc).__name__}: {exc}"
                self.calls.append((start, time.monotonic() - start, error))
                time.sleep(max(0.0, PERIOD_S - (time.monotonic() - start)))


def _percentiles(seconds: list[float]) -> dict[str, float]:
    if not seconds:
        return {"p50_ms": float("nan"), "p99_ms": float("nan")}
    values = np.asarray(seconds) * 1000
    return {"p50_ms": float(np.percentile(values, 50)), "p99_ms": float(np.percentile(values, 99))}


def measure(cp: Any, url: str) -> dict[str, Any]:
    from mitiga_devstack.cluster import CHART, helm

    stop = threading.Event()
    clients = [Client(url, stop) for _ in range(CLIENTS)]
    for c in clients:
        c.start()
    windows: list[tuple[float, float]] = []
    try:
        time.sleep(10)  # a calm period first
        for i in range(1, ROLLOUTS + 1):
            begin = time.monotonic()
            helm(cp, "upgrade", RELEASE, str(CHART), "--namespace", NAMESPACE, "--reuse-values", "--wait",
                 "--timeout", "300s", "--set-string", f"inference.env.MITIGA_ROLLOUT_MARK={i}")
            windows.append((begin, time.monotonic()))
            time.sleep(5)
    finally:
        stop.set()
        for c in clients:
            c.join(60)
    calls = [call for c in clients for call in c.calls]
    during = [s for start, s, error in calls if error is None and any(a <= start <= b for a, b in windows)]
    outside = [s for start, s, error in calls if error is None and not any(a <= start <= b for a, b in windows)]
    failures = [error for _, _, error in calls if error is not None]
    return {"rollouts": ROLLOUTS, "clients": CLIENTS, "period_s": PERIOD_S, "requests": len(calls),
            "failed_requests": len(failures), "failures": failures[:10],
            "rollout_s": [round(b - a, 1) for a, b in windows],
            "during_rollouts": {"requests": len(during), **_percentiles(during)},
            "outside_rollouts": {"requests": len(outside), **_percentiles(outside)}}


def run(root: Path) -> dict[str, Any]:
    from kubernetes import client, config

    from mitiga_devstack.cluster import (
        UPSTREAM,
        build_images,
        create_namespace,
        install_dependencies,
        install_release,
        service_url,
    )
    from mitiga_devstack.k8s import ControlPlane
    from mitiga_devstack.node import RealNode

    images = build_images()
    store = root / "models"
    shutil.copytree(lstm_store(), store)
    for path in [store, *store.rglob("*")]:  # the pods' user (10001) owns nothing here
        path.chmod(0o777 if path.is_dir() else 0o666)
    cp = ControlPlane(root / "control-plane", fake_node=False).start()
    node = RealNode(cp, root / "node", images["pause"])
    deps = None
    try:
        node.start()
        for image in ("inference", "detector", "retrainer", *UPSTREAM):
            node.import_image(images[image])
        api = config.new_client_from_config(str(cp.kubeconfig))
        create_namespace(api, NAMESPACE)
        core: Any = client.CoreV1Api(api)
        core.create_persistent_volume({
            "metadata": {"name": "rollout-models"},
            "spec": {"capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteMany"],
                     "hostPath": {"path": str(store), "type": "Directory"},
                     "persistentVolumeReclaimPolicy": "Retain"}})
        deps = install_dependencies(cp, api, NAMESPACE, root / "manifests", images,
                                    scrape={"mitiga-detector": f"{RELEASE}-mitiga-detector:8081"})
        install_release(cp, NAMESPACE, RELEASE, {
            "image.inference": images["inference"], "image.detector": images["detector"],
            "image.retrainer": images["retrainer"], "image.pullPolicy": "Never",
            "config.kafkaBootstrap": deps.kafka_bootstrap, "config.redisUrl": deps.redis_url,
            "models.lstm.version": "1", "inference.replicas": 2,
            "inference.resources.requests.cpu": "100m", "detector.resources.requests.cpu": "100m"})
        return measure(cp, service_url(api, NAMESPACE, f"{RELEASE}-mitiga-inference"))
    finally:
        if deps is not None:
            deps.stop()
        node.stop()
        cp.stop()


def report(result: dict[str, Any]) -> str:
    met = result["failed_requests"] == 0
    during, outside = result["during_rollouts"], result["outside_rollouts"]
    lines = ["# Rollouts that drop nothing (real node)", "",
             f"{result['rollouts']} consecutive Helm rollouts of two inference replicas under {result['clients']} "
             f"keep-alive clients (a 1-row request every {result['period_s'] * 1000:.0f} ms each): "
             f"**{result['failed_requests']} failed** of {result['requests']} requests (goal 0: "
             f"{'met' if met else 'NOT met'}).", "",
             "| | requests | p50 ms | p99 ms |", "|---|---:|---:|---:|",
             f"| during rollouts | {during['requests']} | {during['p50_ms']:.1f} | {during['p99_ms']:.1f} |",
             f"| outside rollouts | {outside['requests']} | {outside['p50_ms']:.1f} | {outside['p99_ms']:.1f} |",
             "", f"Each rollout (`helm upgrade --wait`) took {', '.join(f'{s:.0f}' for s in result['rollout_s'])} s. "
             f"Machine: {os.cpu_count()} CPUs."]
    if result["failures"]:
        lines += ["", "Failures (first ten):", *[f"- `{f}`" for f in result["failures"]]]
    return "\n".join(lines) + "\n"


def main() -> None:
    keep = os.environ.get("BENCH_ROOT")
    root = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="mitiga-rollout-"))
    try:
        result = run(root)
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
    result["goal_met"] = result["failed_requests"] == 0
    write_report("rollout", result, report(result))


if __name__ == "__main__":
    main()
