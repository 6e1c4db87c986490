"""Attack: fill the state store with traffic.

Every client-chosen request id, every prediction the detector keeps for its ground truth, and every bus message it
marks as handled is a key in Redis;
with only a TTL (7 days) a client that sends requests grows Redis with their rate until `noeviction` refuses writes
and the loop stops. Bounded per model, the keys stay at the bound whatever is sent, the oldest going first and
counted. On the real Redis: ten times a model's bound of requests, as one flood would send them."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

pytestmark = pytest.mark.integration  # the real Redis

BOUND = 2_000
FLOOD = 10 * BOUND


def keys(redis_db: Any, pattern: str) -> int:
    import redis

    client = redis.Redis.from_url(redis_db.url)
    try:
        return sum(1 for _ in client.scan_iter(match=pattern, count=10_000))
    finally:
        client.close()


def used_memory(redis_db: Any) -> int:
    import redis

    client = redis.Redis.from_url(redis_db.url)
    try:
        return int(client.info("memory")["used_memory"])
    finally:
        client.close()


def test_a_flood_of_predictions_keeps_a_model_at_its_bound(redis_db) -> None:  # type: ignore[no-untyped-def]
    from mitiga_core.state.redis import RedisStateStore
    from mitiga_detector.performance import FeedbackJoiner, Prediction

    state = RedisStateStore(redis_db.url)
    joiner = FeedbackJoiner(state, ttl_s=7 * 86400, max_items=BOUND, max_bytes=64 << 20)
    x, y = np.ones((1, 50), np.float32), np.ones((1, 1), np.float32)
    evicted, memory = 0, []
    for batch in range(FLOOD // 500):
        done = joiner.remember_many([Prediction("tab", f"flood-{batch}-{i}", "1", x, y, "2026-12-01T00:00:00", "")
                                     for i in range(500)])
        evicted += done.evicted.get("tab", 0)
        if (batch + 1) * 500 in (BOUND, FLOOD):
            memory.append(used_memory(redis_db))
    state.close()
    assert keys(redis_db, "mitiga:pred:tab:*") == BOUND  # the newest; with a TTL alone all 20,000 would wait
    assert evicted == FLOOD - BOUND
    assert memory[1] - memory[0] < 0.2 * memory[0], memory  # flat once at the bound


def test_a_flood_of_request_ids_keeps_a_model_at_its_bound(redis_db) -> None:  # type: ignore[no-untyped-def]
    from mitiga_core.state.redis import RedisStateStore
    from mitiga_inference.metrics import InferenceMetrics
    from mitiga_inference.request_ids import RequestIds

    state = RedisStateStore(redis_db.url)
    metrics = InferenceMetrics()
    ids = RequestIds(state, 7 * 86400, metrics, max_items=BOUND)
    for i in range(FLOOD):
        ids.reserve("tab", f"flood-{i}", 1)
    state.close()
    assert keys(redis_db, "mitiga:request-id:tab:*") == BOUND
    assert metrics.registry.get_sample_value("mitiga_inference_request_ids_evicted_total", {"model": "tab"}) == \
        FLOOD - BOUND


def test_a_flood_of_bus_messages_keeps_the_dedupe_marks_at_their_bound(redis_db, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from mitiga_core.state.redis import RedisStateStore
    from mitiga_detector.core import DetectorCore
    from tests.detector.conftest import Harness, inference, write_bundle

    h = Harness(tmp_path, dedupe_max=50)
    state = RedisStateStore(redis_db.url)
    h.core = DetectorCore(h.settings, store=h.store, state=state, publisher=h.publisher, metrics=h.metrics,
                          launcher=h.launcher)
    write_bundle(h.store)
    x = np.ones((1, 3), np.float32)
    last = None
    for i in range(300):
        last = inference(x, x.sum(axis=1, keepdims=True))
        h.core.handle(last)
        if i % 25 == 24:
            h.core.checkpoint()
    assert keys(redis_db, "mitiga:seen:*") == 50  # with a TTL alone, all 300
    h.core.handle(last)  # the newest message delivered again: still recognised
    assert h.value("mitiga_detector_events_duplicate_total") == 1
    state.close()
    h.publisher.stop()
