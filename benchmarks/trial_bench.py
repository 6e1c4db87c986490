"""The champion's latency while a candidate is on live trial (issue 14, §3): the candidate's prediction is made off
the request path, so what the client sees should not change beyond noise.

Three inference servers on copies of one store (the research LSTM): no trial, a candidate in shadow, a candidate
in canary (10%). The candidate is a second version with the same weights, so the model's own cost is the same.
Latency is measured on a steady open-loop stream (ghz over gRPC at 100 requests/s, as independent clients arrive)
and on closed loops (wrk, the next request as soon as the answer is back, 1 and 4 connections: no idle moment at
all, the worst case for work done after the answer), in rounds that alternate between the servers so that the
machine's drift falls on all of them; each case's figure is the median over the rounds. Noise is the spread of the
no-trial server's own rounds. Target: the shadow server's p50 and p99 within max(10%, twice that spread) of the
no-trial server's on the steady stream, 0 failed, and the shadow predictions counted; the closed loops are reported.
Reported too: the throughput at saturation (the off-path predictions are work: a trial costs capacity).
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from common import free_port, ghz, lstm_store, start, stop, write_report, wrk
from inference_bench import body, grpc_body

from mitiga_core.promotion import Candidate, start_trial
from mitiga_core.store import FilesystemModelStore

SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
SERVERS = ("none", "shadow", "canary")
RATE = int(os.environ.get("BENCH_TRIAL_RATE", "100"))
STEADY = f"{RATE} req/s steady (gRPC)"


def _store(root: Path, mode: str) -> Path:
    shutil.copytree(lstm_store(), root)
    if mode != "none":
        store = FilesystemModelStore(root)
        first = store.list_versions("lstm")[0]
        second = store.write_version("lstm", lambda folder, _: shutil.copytree(store.path("lstm", first), folder,
                                                                               dirs_exist_ok=True))
        start_trial(store, "lstm", Candidate(version=second, mode=mode, champion=first,  # type: ignore[arg-type]
                                             canary_percent=10.0 if mode == "canary" else 0.0))
    return root


def _counted(port: int, metric: str, *labels: str) -> float:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    return sum(float(line.split()[-1]) for line in text.splitlines()
               if line.startswith(metric + "{") and all(label in line for label in labels))


def main() -> None:
    cases = {STEADY: 4, "1-row, 1 conn": 1, "1-row, 4 conns": 4}
    rounds: dict[str, dict[str, list[dict[str, float]]]] = {s: {c: [] for c in cases} for s in SERVERS}
    procs, ports, grpc_ports = {}, {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        try:
            for mode in SERVERS:
                ports[mode], grpc_ports[mode] = free_port(), free_port()
                procs[mode] = start([sys.executable, "-m", "mitiga_inference"], ports[mode], {
                    "MITIGA_MODEL_STORE_PATH": str(_store(Path(tmp) / mode, mode)), "MITIGA_PORT": str(ports[mode]),
                    "MITIGA_GRPC_PORT": str(grpc_ports[mode]), "MITIGA_HOST": "127.0.0.1",
                    "MITIGA_LOG_LEVEL": "WARNING", "MITIGA_MODELS": '["lstm"]'})
            url = "http://127.0.0.1:{}/v2/models/lstm/infer"
            for mode in SERVERS:
                wrk(url.format(ports[mode]), body(1), connections=4, seconds=2)  # warm-up
            for _ in range(ROUNDS):
                for case, connections in cases.items():
                    for mode in SERVERS:
                        rounds[mode][case].append(
                            ghz(f"127.0.0.1:{grpc_ports[mode]}", grpc_body(1), connections=connections,
                                requests=RATE * SECONDS, rate=RATE) if case == STEADY else
                            wrk(url.format(ports[mode]), body(1), connections=connections, seconds=SECONDS))
            time.sleep(2)  # the last off-path batch
            made = {mode: (_counted(ports[mode], "mitiga_inference_shadow_predictions_total", 'outcome="ok"'),
                           _counted(ports[mode], "mitiga_inference_requests_total"))
                    for mode in ("shadow", "canary")}
            saturated = {mode: wrk(url.format(ports[mode]), body(1), connections=16, seconds=SECONDS)
                         for mode in ("none", "shadow")}
        finally:
            for proc in procs.values():
                stop(proc)

    results: dict[str, Any] = {"machine": {"cpus": os.cpu_count()}, "seconds_per_round": SECONDS, "rounds": ROUNDS,
                               "servers": {}, "saturated_16_conns": saturated,
                               "off_path_made_and_requests": made}
    for mode in SERVERS:
        results["servers"][mode] = {case: {
            "p50_ms": statistics.median(r["p50_ms"] for r in runs),
            "p99_ms": statistics.median(r["p99_ms"] for r in runs),
            "requests_per_s": statistics.median(r["requests_per_s"] for r in runs),
            "failed": sum(int(r["failed"]) for r in runs), "rounds": runs} for case, runs in rounds[mode].items()}
    summary: dict[str, Any] = {"targets_met": {}}
    for case in cases:
        base = rounds["none"][case]
        spread = {q: (max(r[q] for r in base) - min(r[q] for r in base)) / statistics.median(r[q] for r in base)
                  for q in ("p50_ms", "p99_ms")}
        for mode in ("shadow", "canary"):
            for q in ("p50_ms", "p99_ms"):
                ratio = results["servers"][mode][case][q] / results["servers"]["none"][case][q]
                allowed = 1 + max(0.10, 2 * spread[q])
                summary[f"{mode} {case} {q} ratio"] = ratio
                summary[f"none {case} {q} spread"] = spread[q]
                if mode == "shadow" and case == STEADY:
                    summary["targets_met"][f"{case} {q} within noise"] = ratio <= allowed
    summary["targets_met"]["no_failed"] = all(results["servers"][m][c]["failed"] == 0 for m in SERVERS for c in cases)
    summary["shadow_share_made"] = made["shadow"][0] / made["shadow"][1] if made["shadow"][1] else 0.0
    summary["targets_met"]["shadow_predictions_made"] = summary["shadow_share_made"] >= 0.95
    summary["saturated_throughput_ratio"] = (saturated["shadow"]["requests_per_s"]
                                             / saturated["none"]["requests_per_s"])
    results["summary"] = summary

    lines = ["# Live trial benchmark: the champion's latency with a candidate on trial", "",
             f"LSTM (window 50), 1-row requests over loopback: a steady {RATE} req/s stream (ghz, gRPC, 4 "
             "connections) and closed loops (wrk, REST), "
             f"{ROUNDS} alternating rounds of {SECONDS} s, {os.cpu_count()} CPUs; medians over the rounds.", "",
             "| server | case | req/s | p50 ms | p99 ms | failed |", "|---|---|---|---|---|---|"]
    for mode in SERVERS:
        for case in cases:
            r = results["servers"][mode][case]
            lines.append(f"| {mode} | {case} | {r['requests_per_s']:.1f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
                         f"{r['failed']} |")
    lines += [""] + [f"- shadow vs none, {case}: p50 **{summary[f'shadow {case} p50_ms ratio']:.2f}x**, p99 "
                     f"**{summary[f'shadow {case} p99_ms ratio']:.2f}x** (no-trial rounds' own spread: p50 "
                     f"{summary[f'none {case} p50_ms spread']:.0%}, p99 {summary[f'none {case} p99_ms spread']:.0%}"
                     + ("; target within max(10%, twice that))" if case == STEADY else "; reported)")
                     for case in cases]
    lines += [f"- shadow predictions made: {summary['shadow_share_made']:.0%} of the shadow server's requests "
              "(target >= 95%)",
              f"- throughput at saturation (16 connections), shadow vs none: "
              f"{summary['saturated_throughput_ratio']:.2f}x (the trial's cost in capacity; no target)",
              f"- targets met: {', '.join(k for k, v in summary['targets_met'].items() if v) or 'none'}; "
              f"not met: {', '.join(k for k, v in summary['targets_met'].items() if not v) or 'none'}", ""]
    write_report("trial", results, "\n".join(lines))


if __name__ == "__main__":
    main()
