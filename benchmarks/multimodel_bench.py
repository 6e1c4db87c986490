"""Many models in one inference replica (issue 31, part 2): 1,000 small registered models, a memory budget that
holds a fraction of them, and a Zipf-distributed stream of 1-row requests. Reports the cold-load latency (first
requests to models never loaded), the latency of the stream and of its hottest models, the hit rate, the loads and
evictions, and the replica's memory. Results: benchmarks/results/multimodel.{json,md}."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np
from common import CACHE, free_port, rss_mb, start, stop, write_report

if TYPE_CHECKING:
    from pathlib import Path

MODELS = int(os.environ.get("MULTIMODEL_MODELS", "1000"))
REQUESTS = int(os.environ.get("MULTIMODEL_REQUESTS", "4000"))
BUDGET = os.environ.get("MULTIMODEL_BUDGET", "20MiB")
ZIPF_S = 1.1
COLD = 50
"""First requests to models never loaded, one at a time: the cold-load latency."""
CONNECTIONS = 8
ADMIN = "bench-admin"


def _small_model(folder: Path) -> Path:
    """A plain Keras regressor, 3 features → 16 → 1, as a team's own training code would save it."""
    import keras

    keras.utils.set_random_seed(1)
    inputs = keras.Input(shape=(3,))
    model = keras.Model(inputs, keras.layers.Dense(1)(keras.layers.Dense(16, activation="relu")(inputs)))
    path = folder / "small.keras"
    model.save(path)
    return path


def store(models: int) -> Path:
    """A model store with ``models`` copies of one small model (uploaded once through the admin API, then
    registered again under each name), cached."""
    root = CACHE / f"multimodel-store-{models}"
    if (root / f"m{models - 1:04d}" / "champion.json").exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    port = free_port()
    proc = start(["python", "-m", "mitiga_inference"], port,
                 {"MITIGA_PORT": str(port), "MITIGA_MODEL_STORE_PATH": str(root), "MITIGA_ADMIN_TOKEN": ADMIN,
                  "MITIGA_BUS": "memory"})
    try:
        answer = httpx.post(f"http://127.0.0.1:{port}/v2/repository/models/m0000/upload",
                            content=_small_model(root.parent).read_bytes(),
                            headers={"Authorization": f"Bearer {ADMIN}"}, timeout=120)
        answer.raise_for_status()
    finally:
        stop(proc)
    for i in range(1, models):
        name = f"m{i:04d}"
        shutil.copytree(root / "m0000", root / name)
        for manifest in (root / name / "versions").glob("*/manifest.json"):
            manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "name": name}))
    return root


def _body() -> dict[str, Any]:
    return {"inputs": [{"name": "features", "shape": [1, 3], "datatype": "FP32", "data": [0.1, 0.2, 0.3]}]}


def _metric(text: str, prefix: str) -> float:
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(prefix))


async def _stream(url: str, names: list[str]) -> tuple[list[float], int]:
    latencies = [0.0] * len(names)
    failed = 0
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(len(names)):
        queue.put_nowait(i)

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal failed
        while not queue.empty():
            i = queue.get_nowait()
            started = time.perf_counter()
            answer = await client.post(f"{url}/v2/models/{names[i]}/infer", json=_body())
            latencies[i] = (time.perf_counter() - started) * 1000
            failed += answer.status_code != 200

    async with httpx.AsyncClient(timeout=120) as client:
        await asyncio.gather(*(worker(client) for _ in range(CONNECTIONS)))
    return latencies, failed


def main() -> None:
    root = store(MODELS)
    rng = np.random.default_rng(31)
    weights = 1 / np.arange(1, MODELS + 1) ** ZIPF_S
    order = rng.permutation(MODELS)  # popularity is not the name order
    stream = [f"m{order[k]:04d}" for k in rng.choice(MODELS, size=REQUESTS, p=weights / weights.sum())]
    hottest = {f"m{order[k]:04d}" for k in range(20)}
    never = [f"m{order[k]:04d}" for k in range(MODELS - COLD, MODELS)]  # the least popular: not in the stream yet
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    started = time.perf_counter()
    proc = start(["python", "-m", "mitiga_inference"], port,
                 {"MITIGA_PORT": str(port), "MITIGA_MODEL_STORE_PATH": str(root), "MITIGA_ADMIN_TOKEN": ADMIN,
                  "MITIGA_BUS": "memory", "MITIGA_MODEL_MEMORY_BUDGET": BUDGET})
    ready_s = time.perf_counter() - started
    try:
        rss_start = rss_mb(proc.pid)
        cold = []
        for name in never:
            t = time.perf_counter()
            httpx.post(f"{url}/v2/models/{name}/infer", json=_body(), timeout=120).raise_for_status()
            cold.append((time.perf_counter() - t) * 1000)
        before = httpx.get(f"{url}/metrics").text
        t = time.perf_counter()
        latencies, failed = asyncio.run(_stream(url, stream))
        seconds = time.perf_counter() - t
        after = httpx.get(f"{url}/metrics").text
        rss_end = rss_mb(proc.pid)
    finally:
        stop(proc)
    loads = (_metric(after, 'mitiga_inference_model_loads_total{trigger="request"}')
             - _metric(before, 'mitiga_inference_model_loads_total{trigger="request"}'))
    hot = [ms for ms, name in zip(latencies, stream, strict=True) if name in hottest]
    results = {
        "models": MODELS, "requests": REQUESTS, "budget": BUDGET, "zipf_s": ZIPF_S, "connections": CONNECTIONS,
        "ready_s": round(ready_s, 2),
        "cold_load_ms": {"p50": float(np.percentile(cold, 50)), "p99": float(np.percentile(cold, 99))},
        "stream_ms": {"p50": float(np.percentile(latencies, 50)), "p99": float(np.percentile(latencies, 99))},
        "hottest_20_ms": {"p50": float(np.percentile(hot, 50)), "p99": float(np.percentile(hot, 99))},
        "requests_per_s": REQUESTS / seconds, "failed": failed, "distinct_models": len(set(stream)),
        "hit_rate": 1 - loads / REQUESTS, "loads": loads,
        "evictions": _metric(after, "mitiga_inference_model_evictions_total"),
        "loaded_models": _metric(after, "mitiga_inference_loaded_models "),
        "loaded_mb": _metric(after, "mitiga_inference_loaded_bytes ") / 2**20,
        "rss_mb": {"start": rss_start, "end": rss_end},
    }
    r = results
    markdown = "\n".join([
        "# Many models in one inference replica",
        "",
        f"{MODELS:,} small Keras regressors (3 → 16 → 1) registered; `MITIGA_MODEL_MEMORY_BUDGET={BUDGET}`; nothing "
        f"pinned. {REQUESTS:,} 1-row REST requests over {CONNECTIONS} connections, models drawn from a Zipf "
        f"distribution (s = {ZIPF_S}; {r['distinct_models']} distinct models asked). 2 CPUs, embedded bus.",
        "",
        "| measure | value |", "|---|---|",
        f"| ready after start (nothing loaded) | {r['ready_s']:.1f} s |",
        f"| cold load: first request to a model, one at a time ({COLD}) | p50 {r['cold_load_ms']['p50']:.0f} ms, "
        f"p99 {r['cold_load_ms']['p99']:.0f} ms |",
        f"| Zipf stream, every request | p50 {r['stream_ms']['p50']:.1f} ms, p99 {r['stream_ms']['p99']:.0f} ms, "
        f"{r['requests_per_s']:.0f} req/s, {failed} failed |",
        f"| Zipf stream, the 20 hottest models (warm) | p50 {r['hottest_20_ms']['p50']:.1f} ms, "
        f"p99 {r['hottest_20_ms']['p99']:.1f} ms |",
        f"| hit rate (requests that found their model loaded) | {r['hit_rate']:.1%} ({loads:.0f} cold loads) |",
        f"| evictions | {r['evictions']:.0f} |",
        f"| models loaded at the end, their measured cost | {r['loaded_models']:.0f}, {r['loaded_mb']:.1f} MiB |",
        f"| replica resident memory, after start → at the end | {rss_start:.0f} MiB → {rss_end:.0f} MiB |",
        "",
        "Cold requests wait for the load (no request fails for it); a cold p99 in the stream is the load plus the "
        "queue behind it, and a warm request that arrives during a load waits for the interpreter the load holds "
        "(the hottest models' p99). The budget counts what each load added to the resident memory (measured after "
        "the memory of unloaded models went back to the system); the replica's growth beyond it is TensorFlow's "
        "runtime, set up by the first load and charged to no model, and the allocator's fragmentation over the "
        "loads and unloads.",
        "",
    ])
    write_report("multimodel", results, markdown)


if __name__ == "__main__":
    main()
