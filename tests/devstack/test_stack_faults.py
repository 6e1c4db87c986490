"""Fault tests on the multi-process stack with real Kafka and Redis: a broker outage under load, a detector killed
with -9 mid-episode, and a Redis restart."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
import redis

from mitiga_core.events import Topic
from tests.devstack.conftest import Traffic, decoded, make_stack, metric, wait_for, windows

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _processed_ids(redis_url: str) -> set[str]:
    """Request ids whose inference event the detector processed: it keeps each prediction awaiting feedback."""
    client = redis.Redis.from_url(redis_url)
    ids = {k.decode().rsplit(":", 1)[1] for k in client.scan_iter("mitiga:pred:lstm:*")}
    client.close()
    return ids


def test_a_30_second_broker_outage_loses_no_request_and_no_event(tmp_path, reference_store) -> None:  # type: ignore[no-untyped-def]
    stack = make_stack(tmp_path, reference_store, monitoring=False).start()
    traffic = Traffic(stack.inference.url)
    x = windows("2003-01-01", "2004-01-01")[0]
    stop = threading.Event()

    def load() -> None:
        i = 0
        while not stop.is_set():
            traffic.infer(x[i % len(x):i % len(x) + 1])
            i += 1
            time.sleep(0.05)

    worker = threading.Thread(target=load)
    try:
        worker.start()
        time.sleep(5)
        stack.kafka.stop()
        down_at = len(traffic.served)
        time.sleep(30)
        served_while_down = len(traffic.served) - down_at
        stack.kafka.start()
        time.sleep(5)
        stop.set()
        worker.join()
        assert traffic.failures == [] and served_while_down > 100
        served = set(traffic.served)
        dropped = (metric(stack.inference.url, "mitiga_events_dropped_total")
                   + metric(stack.inference.url, "mitiga_bus_delivery_failed_total"))
        processed = wait_for(lambda: (p := _processed_ids(stack.redis.url)) and len(p) + dropped >= len(served) and p,
                             180, "the detector to catch up after the outage")
        assert processed <= served
        assert len(served - processed) == dropped  # every missing event is a counted drop (here: none)
        assert dropped == 0
    finally:
        stop.set()
        traffic.close()
        stack.stop()


def test_a_detector_killed_mid_episode_resumes_and_requests_one_retrain(tmp_path, reference_store) -> None:  # type: ignore[no-untyped-def]
    # max_attempts 1 and no cooldown: only the episode's identity stops a second request. The retrain job is given
    # too little data to promote, so the version (and the episode) stay.
    stack = make_stack(tmp_path, reference_store, monitoring=False,
                       detector_env={"MITIGA_MAX_ATTEMPTS": "1", "MITIGA_MIN_ROWS": "100000"}).start()
    traffic = Traffic(stack.inference.url)
    x, y = windows("2012-01-01", "2013-01-01")
    try:
        def send(lo: int, hi: int) -> None:
            for i in range(lo, hi, 10):
                served = traffic.infer(x[i:i + 10])
                assert served is not None, traffic.failures
                traffic.feedback(served["id"], y[i:i + 10])

        send(0, 120)
        requests = wait_for(lambda: decoded(stack.kafka.bootstrap, Topic.RETRAIN), 60, "the retrain request")
        episode = requests[0].episode_id
        send(120, 160)  # more events in flight when the detector dies
        os.killpg(stack.detector.pid, signal.SIGKILL)
        stack.detector.proc.wait()
        stack.detector.proc = None
        send(160, 200)
        stack.detector.start()
        send(200, 240)
        wait_for(lambda: metric(stack.detector.url, "mitiga_detector_events_total", type="InferenceEvent") > 0, 60,
                 "the restarted detector to consume")
        state = wait_for(lambda: (s := traffic.client.get(stack.detector.url + "/v1/models/lstm/drift").json())
                         ["windows"] >= 2 and s, 120, "windows after the restart")
        assert state["episode_id"] == episode  # restored from the checkpoint, not a new episode
        time.sleep(3)
        requests = [r for r in decoded(stack.kafka.bootstrap, Topic.RETRAIN) if r.model_name == "lstm"]
        assert [r.episode_id for r in requests] == [episode]
        # every labelled request reached the retrainer's log exactly once: none lost in the kill, none doubled by
        # the redelivery (the checkpoint and the events' side effects are written together)
        client = redis.Redis.from_url(stack.redis.url)
        wait_for(lambda: client.llen("mitiga:labelled:lstm") >= 24, 60, "all feedback to be joined")
        time.sleep(2)
        assert client.llen("mitiga:labelled:lstm") == 24
        client.close()
    finally:
        traffic.close()
        stack.stop()


def test_a_redis_restart_keeps_pending_feedback_locks_and_checkpoints(tmp_path, reference_store) -> None:  # type: ignore[no-untyped-def]
    stack = make_stack(tmp_path, reference_store, monitoring=False,
                       detector_env={"MITIGA_TRIGGER": "off"}).start()
    traffic = Traffic(stack.inference.url)
    x, y = windows("2001-01-01", "2002-01-01")
    client = redis.Redis.from_url(stack.redis.url)
    try:
        pending = [traffic.infer(x[i:i + 10]) for i in range(0, 50, 10)]
        wait_for(lambda: len(_processed_ids(stack.redis.url)) == 5, 60, "predictions awaiting feedback")
        client.set("mitiga:retrain:lock:lstm", b"req-before-restart", px=600_000)
        checkpoints = wait_for(lambda: sorted(client.scan_iter("mitiga:checkpoint:*")), 30, "a checkpoint")
        stack.redis.stop()
        for i in range(50, 80, 10):  # requests keep being served while Redis is away
            assert traffic.infer(x[i:i + 10]) is not None, traffic.failures
        time.sleep(3)
        stack.redis.start()
        for served, lo in zip(pending, range(0, 50, 10), strict=True):
            assert served is not None
            traffic.feedback(served["id"], y[lo:lo + 10])
        wait_for(lambda: metric(stack.detector.url, "mitiga_feedback_joined_total", model="lstm") == 5, 60,
                 "the feedback sent before the restart to join")
        assert client.get("mitiga:retrain:lock:lstm") == b"req-before-restart"
        assert set(checkpoints) <= set(client.scan_iter("mitiga:checkpoint:*"))
        assert stack.detector.proc is not None and stack.detector.proc.poll() is None
        assert stack.detector.ready() and stack.inference.ready()
        wait_for(lambda: metric(stack.detector.url, "mitiga_detector_events_total", type="InferenceEvent") >= 8, 60,
                 "the events sent while Redis was down to be processed")
    finally:
        client.close()
        traffic.close()
        stack.stop()
