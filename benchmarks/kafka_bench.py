"""The real-adapter benchmark: what Kafka logging costs the inference service, and how fast the detector consumes.

1. Inference throughput (1-row requests, 16 connections, wrk) with the embedded bus (Kafka logging off) and with
   Kafka, in alternating turns, median of ``ROUNDS``. Target: <= 5% loss and no added failures.
2. Detector sustained rate: ``EVENTS`` one-row inference events are produced to Kafka first, then a detector
   process (Kafka + Redis) consumes them from a fresh group; events/s = events / time to process all. They are
   produced in batch messages of ``BATCH`` events, as the inference service publishes them near its peak.
   Target: >= 3x the inference service's peak request rate (from 1).
3. Lag at peak: the detector runs while wrk drives inference at its peak; the detector's consumer lag is sampled
   during and after the run.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from common import free_port, lstm_store, start, stop, write_report, wrk
from inference_bench import body

SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
EVENTS = int(os.environ.get("BENCH_EVENTS", "30000"))
BATCH = int(os.environ.get("BENCH_BATCH", "20"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))


def _metric(url: str, name: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{url}/metrics", timeout=10).text
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples if s.name == name)


def _inference(store: Path, env: dict[str, str]) -> tuple[Any, str]:
    port = free_port()
    proc = start([sys.executable, "-m", "mitiga_inference"], port, {
        "MITIGA_MODEL_STORE_PATH": str(store), "MITIGA_PORT": str(port), "MITIGA_HOST": "127.0.0.1",
        "MITIGA_LOG_LEVEL": "WARNING", "MITIGA_MODELS": '["lstm"]', **env})
    return proc, f"http://127.0.0.1:{port}"


def _produce(bootstrap: str, n: int) -> float:
    """Publish ``n`` one-row inference events for the LSTM in batches of ``BATCH``, as the inference service's
    publisher does at its peak (about 20 requests per 20 ms burst); returns the seconds it took."""
    import numpy as np

    from mitiga_core.bus.kafka import KafkaBus
    from mitiga_core.events import Topic, encode, new_id
    from mitiga_core.pb.mitiga.v1 import events_pb2 as pb
    from mitiga_core.settings import CoreSettings

    bus = KafkaBus(CoreSettings(bus="kafka", kafka_bootstrap=bootstrap, service_name="bench"))
    rng = np.random.default_rng(0)
    start_t = time.perf_counter()
    batch: list[Any] = []
    for i in range(n):
        event = pb.InferenceEvent(event_id=new_id(), request_id=new_id(), model_name="lstm", model_version="1")
        event.inputs.shape.extend([1, 50])
        event.inputs.data.extend((30 + rng.normal(size=50)).tolist())
        event.outputs.shape.extend([1, 1])
        event.outputs.data.append(31.0)
        event.time.GetCurrentTime()
        batch.append(event)
        if len(batch) == BATCH or i == n - 1:
            bus.publish(Topic.INFERENCE, encode(pb.InferenceEventBatch(events=batch), source="bench", key="lstm"))
            batch = []
    bus.flush(60)
    bus.close()
    return time.perf_counter() - start_t


def main() -> None:
    from mitiga_devstack.servers import KafkaServer, RedisServer

    store = lstm_store()
    results: dict[str, Any] = {"cpus": os.cpu_count(), "seconds_per_case": SECONDS, "events": EVENTS}
    payload = body(1)
    with tempfile.TemporaryDirectory(prefix="mitiga-kafka-bench-") as tmp:
        kafka, redis = KafkaServer(Path(tmp) / "kafka").start(), RedisServer(Path(tmp) / "redis").start()
        real = {"MITIGA_BUS": "kafka", "MITIGA_KAFKA_BOOTSTRAP": kafka.bootstrap, "MITIGA_STATE": "redis",
                "MITIGA_REDIS_URL": redis.url}
        try:
            # 1. Kafka logging off / on: both servers up (an idle one costs nothing), measured in turns, the
            # median of ROUNDS runs each, so drift in the machine's speed hits both alike
            servers = {case: _inference(store, env) for case, env in (("kafka_off", {}), ("kafka_on", real))}
            try:
                runs: dict[str, list[dict[str, float]]] = {case: [] for case in servers}
                for _, url in servers.values():
                    wrk(f"{url}/v2/models/lstm/infer", payload, connections=16, seconds=2)
                for _ in range(ROUNDS):
                    for case, (_, url) in servers.items():
                        runs[case].append(wrk(f"{url}/v2/models/lstm/infer", payload, connections=16,
                                              seconds=SECONDS))
                for case, (_, url) in servers.items():
                    ordered = sorted(runs[case], key=lambda r: r["requests_per_s"])
                    results[case] = {**ordered[len(ordered) // 2], "runs": [r["requests_per_s"] for r in ordered],
                                     "failed": sum(r["failed"] for r in ordered)}
                    results[case]["events_dropped"] = (_metric(url, "mitiga_events_dropped_total")
                                                       + _metric(url, "mitiga_bus_delivery_failed_total"))
            finally:
                for proc, _ in servers.values():
                    stop(proc)
            peak = max(results["kafka_off"]["requests_per_s"], results["kafka_on"]["requests_per_s"])

            # 2. detector sustained rate from a backlog
            results["produce_s"] = _produce(kafka.bootstrap, EVENTS)
            port = free_port()
            detector = start([sys.executable, "-m", "mitiga_detector"], port, {
                **real, "MITIGA_MODEL_STORE_PATH": str(store), "MITIGA_PORT": str(port), "MITIGA_HOST": "127.0.0.1",
                "MITIGA_LOG_LEVEL": "WARNING", "MITIGA_TRIGGER": "off", "MITIGA_CONSUMER_GROUP": "bench-backlog"})
            durl = f"http://127.0.0.1:{port}"
            try:
                while _metric(durl, "mitiga_detector_events_total") < 1:
                    time.sleep(0.01)
                t0, n0 = time.perf_counter(), _metric(durl, "mitiga_detector_events_total")
                while (n := _metric(durl, "mitiga_detector_events_total")) < EVENTS:
                    time.sleep(0.2)
                rate = (n - n0) / (time.perf_counter() - t0)
                results["detector_events_per_s"] = rate

                # 3. lag while inference runs at its peak
                proc, url = _inference(store, real)
                lags: list[float] = []
                done = threading.Event()

                def sample() -> None:
                    while not done.is_set():
                        lags.append(_metric(durl, "mitiga_consumer_lag"))
                        time.sleep(0.5)

                sampler = threading.Thread(target=sample)
                sampler.start()
                try:
                    results["at_peak"] = wrk(f"{url}/v2/models/lstm/infer", payload, connections=16, seconds=SECONDS)
                    time.sleep(2)
                finally:
                    done.set()
                    sampler.join()
                    stop(proc)
                results["lag_max_during"] = max(lags, default=0.0)
                results["lag_after_2s"] = lags[-1] if lags else 0.0
            finally:
                stop(detector)
        finally:
            kafka.stop()
            redis.stop()

    off, on = results["kafka_off"], results["kafka_on"]
    loss = 1 - on["requests_per_s"] / off["requests_per_s"]
    ratio = results["detector_events_per_s"] / peak
    results["summary"] = {"kafka_throughput_loss": loss, "added_failures": on["failed"] - off["failed"],
                          "detector_vs_peak": ratio,
                          "targets_met": {"loss_5pct": loss <= 0.05, "no_added_failures": on["failed"] <= off["failed"],
                                          "detector_3x_peak": ratio >= 3}}
    lines = ["# Kafka and detector benchmark", "",
             f"Research LSTM, 1-row requests, 16 connections, wrk over loopback, {SECONDS} s per case; Kafka 3.9 "
             f"(KRaft) and Redis on loopback; {os.cpu_count()} CPUs.", "",
             "| case | req/s (median) | runs | p50 ms | p99 ms | failed | events dropped |",
             "|---|---|---|---|---|---|---|",
             *(f"| {c} | {results[c]['requests_per_s']:.1f} | {', '.join(f'{r:.0f}' for r in results[c]['runs'])} | "
               f"{results[c]['p50_ms']:.2f} | {results[c]['p99_ms']:.2f} | {results[c]['failed']} | "
               f"{results[c]['events_dropped']:.0f} |" for c in ("kafka_off", "kafka_on")),
             "", f"- Throughput loss with Kafka logging: **{loss:.1%}** (target <= 5%), added failures "
             f"{on['failed'] - off['failed']} (target 0)",
             f"- Detector sustained: **{results['detector_events_per_s']:.0f} events/s** from a {EVENTS}-event Kafka "
             f"backlog = **{ratio:.1f}x** the inference peak of {peak:.0f} req/s (target >= 3x)",
             f"- Detector lag while inference ran at {results['at_peak']['requests_per_s']:.0f} req/s: max "
             f"{results['lag_max_during']:.0f} records, {results['lag_after_2s']:.0f} two seconds after the load "
             "stopped", ""]
    write_report("kafka", results, "\n".join(lines))


if __name__ == "__main__":
    main()
