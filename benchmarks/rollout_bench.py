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
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np
from common import lstm_store, write_report
from realnode import NAMESPACE, in_root, node_release

if TYPE_CHECKING:
    from pathlib import Path

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
    from mitiga_devstack.cluster import service_url

    store = root / "models"
    shutil.copytree(lstm_store(), store)
    for path in [store, *store.rglob("*")]:  # the pods' user (10001) owns nothing here
        path.chmod(0o777 if path.is_dir() else 0o666)
    with node_release(root, store, RELEASE, {
            "models.lstm.version": "1", "inference.replicas": 2,
            "inference.resources.requests.cpu": "100m", "detector.resources.requests.cpu": "100m"}) as (cp, api):
        return measure(cp, service_url(api, NAMESPACE, f"{RELEASE}-mitiga-inference"))


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
    result = in_root("mitiga-rollout-", run)
    result["goal_met"] = result["failed_requests"] == 0
    write_report("rollout", result, report(result))


if __name__ == "__main__":
    main()
