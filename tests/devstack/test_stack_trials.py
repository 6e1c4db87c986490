"""Live trials in multi-process mode over real Kafka and Redis: a candidate in shadow gets a copy of every request
off the request path, and once enough of them have ground truth the detector's paired test decides. A worse
candidate is discarded and unloaded without ever answering a client; then drift retrains the model, the
retrainer (``MITIGA_PROMOTION_MODE=shadow``) puts its challenger on trial instead of promoting it, and the trial
promotes it: a promotion Job makes it the champion and the inference process serves it. No request fails."""

from __future__ import annotations

import pytest

from mitiga_core.events import Topic, encode
from mitiga_core.promotion import Candidate, start_trial
from mitiga_core.store import FilesystemModelStore
from tests.devstack.conftest import Traffic, decoded, make_stack, metric, wait_for, windows
from tests.inference.test_hot_swap import add_shifted_version

pytestmark = [pytest.mark.integration, pytest.mark.slow]
MIN_LABELLED = 20


def _send(stack, traffic: Traffic, x, y, rows: int) -> list[str]:  # type: ignore[no-untyped-def]
    """Requests of ``rows`` rows, each answered, seen by the detector, then given its ground truth."""
    versions = []
    for lo in range(0, len(x) - rows + 1, rows):
        seen = metric(stack.detector.url, "mitiga_detector_events_total", type="InferenceEvent")
        served = traffic.infer(x[lo:lo + rows])
        assert served is not None, traffic.failures
        versions.append(served["model_version"])
        wait_for(lambda s=seen: metric(stack.detector.url, "mitiga_detector_events_total",
                                       type="InferenceEvent") > s, 60, "the detector to see the request")
        traffic.feedback(served["id"], y[lo:lo + rows])
    return versions


def _explain(stack) -> str:  # type: ignore[no-untyped-def]
    import httpx

    lines = [line for url in (stack.detector.url, stack.inference.url)
             for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines()
             if ("promotion" in line or "shadow" in line or "trial" in line) and not line.startswith("#")]
    return "\n".join(lines)


def _trials(store: FilesystemModelStore) -> list[dict[str, object]]:
    return [d for d in store.decisions("lstm") if d.get("trial")]


def test_a_worse_candidate_is_discarded_then_a_retrained_one_is_promoted_after_its_shadow_trial(  # type: ignore[no-untyped-def]
        tmp_path, reference_store) -> None:
    stack = make_stack(tmp_path, reference_store, monitoring=False, detector_env={
        "MITIGA_PROMOTION_MODE": "shadow", "MITIGA_PROMOTION_MIN_LABELLED": str(MIN_LABELLED),
        "MITIGA_EPOCHS": "2", "MITIGA_HOLDOUT_ROWS": "30", "MITIGA_MIN_ROWS": "30", "MITIGA_WINDOW_ROWS": "200",
        "MITIGA_MIN_PERFORMANCE_ROWS": "120"})
    store = FilesystemModelStore(stack.model_store)
    worse = add_shifted_version(stack.model_store, "lstm", 3.0)
    stack.start()
    traffic = Traffic(stack.inference.url)
    try:
        from mitiga_core.bus.kafka import KafkaBus
        from mitiga_core.settings import CoreSettings

        # 1. a worse candidate in shadow (as the retrainer would put it), in the champion's own period
        bus = KafkaBus(CoreSettings(bus="kafka", kafka_bootstrap=stack.kafka.bootstrap, service_name="test"))
        event = start_trial(store, "lstm", Candidate(version=worse, mode="shadow", champion="1"))
        bus.publish(Topic.ROLLOUT, encode(event, source="test", key="lstm"))
        bus.close()
        wait_for(lambda: metric(stack.inference.url, "mitiga_inference_model_memory_bytes", version=worse) > 0 or None,
                 60, "the candidate loaded beside the champion")
        x, y = windows("2001-06-01", "2002-06-01")
        answered = _send(stack, traffic, x[:MIN_LABELLED * 5], y[:MIN_LABELLED * 5], 5)
        assert set(answered) == {"1"}  # a shadow never answers a client
        [discarded] = wait_for(lambda: _trials(store) or None, 60, "the trial's decision")
        assert discarded["promote"] is False and discarded["version"] == worse and discarded["labelled"] == MIN_LABELLED
        assert float(discarded["challenger"]) > float(discarded["champion"])  # type: ignore[arg-type]
        assert store.candidate("lstm") is None and store.champion("lstm") == "1"
        wait_for(lambda: metric(stack.inference.url, "mitiga_inference_model_memory_bytes", version=worse) == 0
                 or None, 60, "the discarded candidate unloaded")
        assert metric(stack.inference.url, "mitiga_inference_shadow_predictions_total", outcome="ok") \
            >= MIN_LABELLED

        # 2. 2012: the error climbs, the model is retrained, and its challenger goes on trial instead of live
        x, y = windows("2012-01-01", "2013-01-01")
        assert set(_send(stack, traffic, x[:200], y[:200], 20)) == {"1"}
        gate = wait_for(lambda: next((d for d in store.decisions("lstm") if d.get("stage") and not d.get("trial")),
                                     None), 300, "the retrained challenger on trial")
        challenger = str(gate["version"])
        assert gate["promote"] is True and gate["stage"] == "shadow" and store.champion("lstm") == "1"
        wait_for(lambda: metric(stack.inference.url, "mitiga_inference_model_memory_bytes", version=challenger) > 0
                 or None, 60, "the challenger loaded beside the champion")
        rest = slice(200, 200 + MIN_LABELLED * 2)  # the rest of 2012, in requests of two rows
        answered = _send(stack, traffic, x[rest], y[rest], 2)
        assert set(answered) == {"1"}
        promoted = wait_for(lambda: next((d for d in _trials(store) if d["version"] == challenger), None), 60,
                            "the challenger's trial decided", explain=lambda: _explain(stack))
        assert promoted["promote"] is True and float(promoted["p_value"]) < 0.05  # type: ignore[arg-type]
        wait_for(lambda: traffic.version() == challenger or None, 120, "the promoted challenger served")
        assert store.champion("lstm") == challenger and store.candidate("lstm") is None
        requests = [e for e in decoded(stack.kafka.bootstrap, Topic.RETRAIN) if e.model_name == "lstm"]
        assert [r.trigger for r in requests] == ["informed", "promotion"]
        assert dict(requests[1].options) == {"promote_version": challenger}
        served = traffic.infer(x[-5:])
        assert served is not None and served["model_version"] == challenger
        assert traffic.failures == []
    finally:
        traffic.close()
        stack.stop()
