"""Helpers shared by the benchmarks: a cached trained model store, servers as subprocesses, wrk and ghz, reports."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
CACHE = Path(os.environ.get("MITIGA_CACHE", Path.home() / ".cache" / "mitiga")) / "bench"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def lstm_store() -> Path:
    """A model store holding the research LSTM (Amazon Open 2000-2003), trained once and cached."""
    store = CACHE / "store"
    if not (store / "lstm" / "champion.json").exists():
        shutil.rmtree(store, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "mitiga_research.modelzoo.cli", "--arch", "lstm", "--epochs", "3",
                        "--store", str(store)], check=True)
    return store


def start(args: list[str], port: int, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    log = open(Path(tempfile.gettempdir()) / f"mitiga-bench-{port}.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(args, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})},
                            stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"server {args} did not become ready; see {log.name}")
        time.sleep(0.2)


def rss_mb(pid: int | str = "self") -> float:
    """A process' resident memory in MiB (Linux ``/proc/<pid>/status``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """The CPU time (user and system) a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        raise RuntimeError(f"wrk latency not understood: {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def wrk(url: str, body: dict[str, Any] | tuple[bytes, dict[str, str]], *, connections: int, seconds: int,
        threads: int = 1) -> dict[str, float]:
    """Run wrk (C, one thread) against ``url`` POSTing ``body`` (JSON, or raw bytes with their headers);
    requests/s, p50/p99 ms, non-2xx count."""
    content, headers = (json.dumps(body).encode(), {"Content-Type": "application/json"}) if isinstance(body, dict) \
        else body
    with tempfile.TemporaryDirectory() as tmp:
        payload = Path(tmp) / "body"
        payload.write_bytes(content)
        script = Path(tmp) / "post.lua"
        script.write_text(
            'wrk.method = "POST"\n' + "".join(f'wrk.headers["{k}"] = "{v}"\n' for k, v in headers.items())
            + f'local f = io.open("{payload}", "rb")\nwrk.body = f:read("*a")\nf:close()\n'
        )
        command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "30s"]
        out = subprocess.run([*command,
                              "-s", str(script), url], check=True, capture_output=True, text=True).stdout
    if "Requests/sec" not in out or "50%" not in out:
        raise RuntimeError(f"wrk output not understood:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    failed = int(errors.group(1)) if errors else 0
    if socket_errors:
        failed += sum(int(g) for g in socket_errors.groups())
    return {"requests_per_s": rps, "p50_ms": p50, "p99_ms": p99, "failed": failed}


def ghz(address: str, request: dict[str, Any], *, connections: int, requests: int,
        rate: int | None = None) -> dict[str, float]:
    """Run ghz (the gRPC counterpart of wrk; ``scripts/build-ghz.sh``) against the OIP ModelInfer call at
    ``address``, ``requests`` calls in all; requests/s, p50/p99 ms, non-OK count. (A count, not a duration: at
    the end of a duration ghz closes its connection under the calls in flight and reports them as failed.) ``rate``:
    calls per second at most (an open-loop stream, as real clients arrive) instead of as fast as answered."""
    binary = os.environ.get("GHZ") or subprocess.run(["bash", str(HERE.parent / "scripts" / "build-ghz.sh")],
                                                     check=True, capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory() as tmp:
        payload = Path(tmp) / "request.json"
        payload.write_text(json.dumps(request))
        out = subprocess.run([binary, "--insecure", "--proto", str(HERE.parent / "protos" / "inference" /
                                                                  "grpc_predict_v2.proto"),
                              "--call", "inference.GRPCInferenceService/ModelInfer", "-D", str(payload),
                              "-c", str(connections), "--connections", "1", "-n", str(requests), "--timeout", "30s",
                              *(["--rps", str(rate)] if rate else []),
                              "--format", "json", address], check=True, capture_output=True, text=True).stdout
    report = json.loads(out)
    latency = {int(d["percentage"]): d["latency"] / 1e6 for d in report.get("latencyDistribution") or []}
    codes = report.get("statusCodeDistribution") or {}
    return {"requests_per_s": float(report["rps"]), "p50_ms": latency.get(50, float("nan")),
            "p99_ms": latency.get(99, float("nan")), "failed": sum(n for code, n in codes.items() if code != "OK")}


def delay_table(results: dict[str, Any], scenarios: list[str], names: list[str], stable: int, unit: str) -> list[str]:
    """Markdown rows: each scenario's detection delay per detector, the median delay, and the false-alarm rate."""
    lines = ["| scenario | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for scenario in scenarios:
        cells = [str(results["scenarios"][scenario][n]["delay"] or "never") for n in names]
        lines.append(f"| {scenario} | " + " | ".join(cells) + " |")
    lines.append("| **median delay** | " + " | ".join(f"{results['median_delay'][n]:g}" for n in names) + " |")
    lines.append(f"| **false alarms / 10k stable {unit}** ({stable:,} stable) | "
                 + " | ".join(f"{results['false_alarms_per_10k'][n]:.2f}" for n in names) + " |")
    return lines


def write_report(name: str, results: dict[str, Any], markdown: str) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(results, indent=2))
    (RESULTS / f"{name}.md").write_text(markdown)
    print(markdown)
