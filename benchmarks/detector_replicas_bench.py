"""Two detector replicas holding 2,000 models between them, on real Kafka and Redis (issue 31, P8).

The models (the 13-feature regressors of ``detector_scale_bench.py``) are registered in one store. Their events, 10
rows each, go to Kafka keyed by model, as the inference service publishes them: the inference topic's partitions
(``PARTITIONS``) spread the models, and two detector processes in one consumer group split the partitions.

1. Warm-up: every model sends a window's worth of events; each replica builds the monitors of its models. Memory per
   model is the growth of each replica's resident memory between the first ``FIRST`` models and all of them.
2. Measured: ``EVENTS_PER_MODEL`` more events per model, in random order; the two replicas' combined rate.
3. Each replica's ``/metrics``: the time to scrape it, its series, and the models it exports.

Goals: every model is held by exactly one replica, both hold models, and a model costs <= 0.5 MB in either.
"""

from __future__ import annotations

import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from common import free_port, rss_mb, start, stop, write_report
from detector_scale_bench import messages, write_models
from prometheus_client.parser import text_string_to_metric_families

MODELS = int(os.environ.get("BENCH_MODELS", "2000"))
FIRST = MODELS // 20
"""Models warmed up first: the resident memory then is the baseline the rest add to."""
EVENTS_PER_MODEL = 12
PARTITIONS = 12
GROUP = "bench-replicas"
WINDOW = 100


def _scrape(url: str) -> tuple[float, dict[str, Any]]:
    start_t = time.perf_counter()
    text = httpx.get(f"{url}/metrics", timeout=60).text
    seconds = time.perf_counter() - start_t
    out: dict[str, Any] = {"series": 0, "monitors": 0.0, "models": set()}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out["series"] += 1
            if sample.name == "mitiga_detector_monitors":
                out["monitors"] = sample.value
            elif sample.name == "mitiga_drift_window_rows":
                out["models"].add(sample.labels["model"])
    return seconds, out


def _send(bus: Any, envelopes: list[Any]) -> None:
    from mitiga_core.events import Topic

    for envelope in envelopes:
        bus.publish(Topic.INFERENCE, envelope)
    bus.flush(120)


def _wait(bootstrap: str, timeout_s: float) -> None:
    """Until the replicas have committed every inference record produced (they commit after their checkpoint).
    Read from Kafka, not from the replicas' ``/metrics``: a scrape of a thousand models' series costs a replica
    about a second of its one interpreter."""
    from kafka import KafkaConsumer, TopicPartition

    from mitiga_core.events import Topic

    # a consumer of the replicas' group that never joins it: it only reads the group's committed offsets
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=GROUP, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(Topic.INFERENCE, p) for p in consumer.partitions_for_topic(Topic.INFERENCE)]
        ends = consumer.end_offsets(partitions)
        deadline = time.monotonic() + timeout_s
        while not all((consumer.committed(p) or 0) >= ends[p] for p in partitions):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the replicas did not catch up in {timeout_s:.0f} s")
            time.sleep(0.2)
    finally:
        consumer.close()


def _settled(bootstrap: str, members: int, timeout_s: float) -> None:
    """Until the group is stable with ``members`` members (each has its partitions before the first event)."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            info = admin.describe_groups([GROUP]).get(GROUP, {})
            if info.get("group_state") == "Stable" and len(info.get("members") or ()) == members:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the group did not settle with {members} members in {timeout_s:.0f} s: {info}")
            time.sleep(0.5)
    finally:
        admin.close()


def run(folder: Path) -> dict[str, Any]:
    from mitiga_core.bus.kafka import KafkaBus
    from mitiga_core.settings import CoreSettings
    from mitiga_devstack.servers import KafkaServer, RedisServer

    names = [f"m{i}" for i in range(MODELS)]
    write_models(folder / "store", MODELS)
    kafka, redis = KafkaServer(folder / "kafka").start(), RedisServer(folder / "redis").start()
    env = {"MITIGA_BUS": "kafka", "MITIGA_KAFKA_BOOTSTRAP": kafka.bootstrap, "MITIGA_STATE": "redis",
           "MITIGA_REDIS_URL": redis.url, "MITIGA_KAFKA_PARTITIONS": str(PARTITIONS),
           "MITIGA_MODEL_STORE_PATH": str(folder / "store"), "MITIGA_HOST": "127.0.0.1", "MITIGA_LOG_LEVEL": "WARNING",
           "MITIGA_TRIGGER": "off", "MITIGA_CONSUMER_GROUP": GROUP}
    bus = KafkaBus(CoreSettings(bus="kafka", kafka_bootstrap=kafka.bootstrap, kafka_partitions=PARTITIONS,
                                service_name="bench"))
    replicas: list[tuple[Any, str]] = []
    out: dict[str, Any] = {"models": MODELS, "partitions": PARTITIONS, "events_per_model": EVENTS_PER_MODEL}
    try:
        _send(bus, messages(names[:1], 1, 10, 1, "t"))  # the topics, with their partitions, before anyone reads
        for _ in range(2):
            port = free_port()
            replicas.append((start([sys.executable, "-m", "mitiga_detector"], port,
                                   {**env, "MITIGA_PORT": str(port)}), f"http://127.0.0.1:{port}"))
        urls = [url for _, url in replicas]
        _settled(kafka.bootstrap, 2, 300)
        _wait(kafka.bootstrap, 300)
        rss: list[list[float]] = []
        held: list[list[float]] = []
        start_t = time.perf_counter()
        for part in (names[:FIRST], names[FIRST:]):
            order = part * (WINDOW // 10)
            _send(bus, messages(order, len(order), 10, 1, f"w{len(rss)}"))
            _wait(kafka.bootstrap, 3600)
            rss.append([rss_mb(proc.pid) for proc, _ in replicas])
            held.append([_scrape(url)[1]["monitors"] for url in urls])
        out["warm_up_s"] = time.perf_counter() - start_t
        out["monitors"], out["rss_mb"] = held[1], rss[1]
        out["mb_per_model"] = [(rss[1][i] - rss[0][i]) / max(held[1][i] - held[0][i], 1) for i in range(2)]

        order = names * EVENTS_PER_MODEL
        random.Random(31).shuffle(order)
        envelopes = messages(order, len(order), 10, 1, "e")
        start_t = time.perf_counter()
        _send(bus, envelopes)
        _wait(kafka.bootstrap, 3600)
        out["events_per_s"] = len(order) / (time.perf_counter() - start_t)

        scraped = [_scrape(url) for url in urls]
        out["metrics_s"] = [s for s, _ in scraped]
        out["series"] = [m["series"] for _, m in scraped]
        models = [m["models"] for _, m in scraped]
        out["models_exported"] = [len(m) for m in models]
        out["models_in_both"] = len(models[0] & models[1])
        out["models_in_neither"] = len(set(names) - models[0] - models[1])
    finally:
        bus.close()
        for proc, _ in replicas:
            stop(proc)
        kafka.stop()
        redis.stop()
    return out


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="mitiga-replicas-bench-") as tmp:
        results: dict[str, Any] = {"cpus": os.cpu_count(), **run(Path(tmp))}
    worst = max(results["mb_per_model"])
    results["summary"] = {"targets_met": {
        "each_model_in_one_replica": results["models_in_both"] == 0 and results["models_in_neither"] == 0,
        "both_replicas_hold_models": min(results["monitors"]) > 0,
        "mb_per_model_0_5": worst <= 0.5}}
    lines = [f"# Two detector replicas, {MODELS:,} models", "",
             f"{os.cpu_count()} CPUs shared by Kafka 3.9 (KRaft), Redis and two detector processes in one consumer "
             f"group; {MODELS:,} 13-feature regressors (reference 1,000 rows, validation 500, every default signal "
             f"on), 10-row events keyed by model on {PARTITIONS} partitions.", "",
             "| replica | monitors | models exported | RSS MB | MB per model | /metrics s | series |",
             "|---|---|---|---|---|---|---|"]
    for i in range(2):
        lines.append(f"| {i + 1} | {results['monitors'][i]:,.0f} | {results['models_exported'][i]:,} | "
                     f"{results['rss_mb'][i]:,.0f} | {results['mb_per_model'][i]:.2f} | "
                     f"{results['metrics_s'][i]:.2f} | {results['series'][i]:,} |")
    lines += ["", f"- models held by both replicas: {results['models_in_both']}, by neither: "
              f"{results['models_in_neither']} (target 0 and 0)",
              f"- warm-up (every model's first window, its monitor built): {results['warm_up_s']:.0f} s",
              f"- then {EVENTS_PER_MODEL} events per model: **{results['events_per_s']:.0f} events/s** for the two "
              "replicas together, production to Kafka included",
              f"- memory: **{worst:.2f} MB per model** in the larger of the two (target <= 0.5)", ""]
    write_report("detector_replicas", results, "\n".join(lines))


if __name__ == "__main__":
    main()
