"""The whole loop in multi-process mode over real Kafka, Redis, Prometheus and Alertmanager: requests -> Kafka ->
detector -> critical drift -> retrain job -> gate -> rollout -> the inference process serves the new version, and
the drift alert reaches the Alertmanager webhook. Malformed messages on each consumed topic go to mitiga.dlq."""

from __future__ import annotations

import httpx
import pytest

from mitiga_core.events import Envelope, Topic
from mitiga_core.pb.mitiga.v1 import events_pb2 as pb
from mitiga_devstack.alerts import AlertSettings
from mitiga_devstack.webhook import WebhookReceiver
from tests.devstack.conftest import Traffic, decoded, make_stack, metric, read_topic, wait_for, windows

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def loop(tmp_path_factory, reference_store):  # type: ignore[no-untyped-def]
    """Run the scenario once: the LSTM trained on 2000-2001 serves 2012 prices, with feedback."""
    tmp = tmp_path_factory.mktemp("loop")
    webhook = WebhookReceiver()
    stack = make_stack(tmp, reference_store, webhook=webhook, interval="1s", group_wait="1s", console=True,
                       alerts=AlertSettings(page_for="1s", drift_for="2s"),
                       # the error decides (the default policy): judge it on 120 labelled 2012 rows, so the challenger
                       # trains on more of 2012 than of the old data, whatever the order events and labels arrive in
                       detector_env={"MITIGA_EPOCHS": "2", "MITIGA_HOLDOUT_ROWS": "30", "MITIGA_MIN_ROWS": "30",
                                     "MITIGA_WINDOW_ROWS": "200", "MITIGA_MIN_PERFORMANCE_ROWS": "120"})
    stack.start()
    traffic = Traffic(stack.inference.url)
    x, y = windows("2012-01-01", "2013-01-01")
    first_version = traffic.version()
    for lo in range(0, 200, 20):  # 10 requests of 20 rows, each followed by its ground truth
        served = traffic.infer(x[lo:lo + 20])
        assert served is not None, traffic.failures
        wait_for(lambda n=lo: metric(stack.detector.url, "mitiga_detector_events_total", type="InferenceEvent")
                 >= n // 20 + 1, 60, "the detector to see the request")
        traffic.feedback(served["id"], y[lo:lo + 20])
    yield stack, traffic, webhook, first_version
    traffic.close()
    stack.stop()


def test_drift_retrains_and_the_inference_process_serves_the_new_version(loop) -> None:  # type: ignore[no-untyped-def]
    stack, traffic, _, first_version = loop
    new = wait_for(lambda: traffic.version() != first_version and traffic.version(), 300,
                   "the retrained version to be served")
    requests = [e for e in decoded(stack.kafka.bootstrap, Topic.RETRAIN) if e.model_name == "lstm"]
    rollouts = [e for e in decoded(stack.kafka.bootstrap, Topic.ROLLOUT) if e.model_name == "lstm"]
    assert len(requests) == 1 and requests[0].trigger == "informed" and requests[0].episode_id
    assert [r.version for r in rollouts] == [new]
    drift = [e for e in decoded(stack.kafka.bootstrap, Topic.DRIFT) if e.model_name == "lstm"]
    assert any(e.level == pb.DRIFT_LEVEL_CRITICAL for e in drift)
    served = traffic.infer(windows("2012-06-01", "2012-07-01")[0][:5])
    assert served is not None and served["model_version"] == new
    # the gRPC transport of the same process swapped too
    import grpc

    from mitiga_inference.pb.inference import grpc_predict_v2_pb2 as oip
    from mitiga_inference.pb.inference import grpc_predict_v2_pb2_grpc as oip_grpc

    request = oip.ModelInferRequest(model_name="lstm")
    tensor = request.inputs.add(name="window", datatype="FP32", shape=[1, 50])
    tensor.contents.fp32_contents.extend(windows("2012-06-01", "2012-07-01")[0][0].tolist())
    with grpc.insecure_channel(stack.inference_grpc) as channel:
        answer = oip_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=30)
    assert answer.model_version == new


def test_the_drift_alert_reaches_the_alertmanager_webhook(loop) -> None:  # type: ignore[no-untyped-def]
    stack, _, webhook, _ = loop
    alerts = wait_for(lambda: [a for a in webhook.alerts() if a["labels"]["alertname"] == "MitigaModelCritical"],
                      120, "MitigaModelCritical at the webhook")
    labels = alerts[0]["labels"]
    assert labels["model"] == "lstm" and labels["severity"] == "critical" and labels["version"]
    assert alerts[0]["status"] == "firing" and alerts[0]["annotations"]["summary"].startswith("lstm is critical: ")
    # the page names what decided it: the realised error's signals (the default policy), with value and threshold
    assert any(f"{s} = " in alerts[0]["annotations"]["summary"] for s in ("mae_ratio", "mase", "skill_ratio",
                                                                          "rmse_ratio", "concept"))
    assert not [a for a in webhook.alerts() if a["labels"]["severity"] == "critical"
                and a["labels"]["alertname"] != "MitigaModelCritical" and a["labels"].get("metric")]
    firing = httpx.get(f"{stack.prometheus.url}/api/v1/alerts", timeout=10).json()["data"]["alerts"]
    assert any(a["labels"]["alertname"] == "MitigaModelCritical" for a in firing)


def test_the_console_process_shows_prometheus_alert_and_the_retrained_version(loop) -> None:  # type: ignore[no-untyped-def]
    """`make up`'s console: the critical alert Prometheus fired, through Alertmanager, is on its alerts page with a
    banner that links to retraining lstm; the model's page shows the version the loop promoted and why, and its
    health over time from the stack's Prometheus."""
    stack, traffic, _, first_version = loop

    def alerts_page() -> str | None:
        text = httpx.get(f"{stack.console.url}/alerts", timeout=30).text
        return text if "MitigaModelCritical" in text else None

    page = wait_for(alerts_page, 120, "the alert on the console")
    assert 'id="critical-banner"' in page and 'href="/models/lstm#retrain"' in page
    new = wait_for(lambda: traffic.version() != first_version and traffic.version(), 300, "the retrained version")
    model = httpx.get(f"{stack.console.url}/models/lstm", timeout=30).text
    assert f"{new} <strong>champion</strong>" in model and ">informed<" in model and ">promoted<" in model
    assert '<p id="health-source">From Prometheus' in model and 'id="p-values"' in model  # the stack's Prometheus


def test_every_dashboard_query_runs_on_prometheus_and_the_research_panels_have_data(loop) -> None:  # type: ignore[no-untyped-def]
    from mitiga_devstack.dashboard import CLASSIFIER_SIGNALS, queries

    stack = loop[0]
    empty = []
    for expr in queries():
        answer = httpx.get(f"{stack.prometheus.url}/api/v1/query", params={"query": expr}, timeout=10).json()
        assert answer["status"] == "success", (expr, answer)
        classifier = any(f'"{signal}"' in expr for signal in CLASSIFIER_SIGNALS)  # this stack serves no classifier
        if "mitiga_drift_metric" in expr and not classifier and not answer["data"]["result"]:
            empty.append(expr)
    assert empty == []


def test_malformed_messages_on_each_topic_go_to_the_dlq_and_consumers_keep_going(loop) -> None:  # type: ignore[no-untyped-def]
    stack, traffic, _, _ = loop
    from mitiga_core.bus.kafka import KafkaBus
    from mitiga_core.settings import CoreSettings

    bus = KafkaBus(CoreSettings(bus="kafka", kafka_bootstrap=stack.kafka.bootstrap, service_name="test"))
    bad = {Topic.INFERENCE: Envelope(payload=b"\x00garbage", headers={"ce_type": "io.mitiga.inference.v1",
                                                                     "ce_id": "bad-1"}, key="lstm"),
           Topic.FEEDBACK: Envelope(payload=b"not protobuf", key="lstm"),
           Topic.ROLLOUT: Envelope(payload=b"\xff\xff", headers={"ce_type": "io.mitiga.rollout.v1",
                                                                 "ce_id": "bad-3"}, key="lstm")}
    for topic, envelope in bad.items():
        bus.publish(topic, envelope)
    bus.flush()
    before = metric(stack.detector.url, "mitiga_detector_events_total", type="InferenceEvent")
    served = traffic.infer(windows("2012-03-01", "2012-04-01")[0][:3])  # a good event after the bad ones
    assert served is not None
    wait_for(lambda: metric(stack.detector.url, "mitiga_detector_events_total", type="InferenceEvent") > before,
             60, "the detector to process the event after the bad ones")

    def dead() -> dict[str, dict[str, str]]:
        records = read_topic(stack.kafka.bootstrap, Topic.DLQ)
        return {h["mitiga_dlq_topic"]: h for h in ({k: v.decode() for k, v in r.headers} for r in records)}

    lettered = wait_for(lambda: (d := dead()).keys() >= bad.keys() and d, 60, "the dead letters")
    for topic in bad:
        assert lettered[topic]["mitiga_dlq_reason"], topic
    bus.close()


def test_a_cli_rollback_reaches_the_inference_process_through_kafka(loop) -> None:  # type: ignore[no-untyped-def]
    """Last in this module: it undoes the promotion. `mitiga models rollback` configured like the services clears the
    champion cache in Redis and announces the rollback on Kafka; the inference process swaps back well within the
    cache's 30 s TTL."""
    import os
    import subprocess
    import sys

    stack, traffic, _, first_version = loop
    promoted = wait_for(lambda: traffic.version() != first_version and traffic.version(), 300, "the promotion")
    env = {**os.environ, "MITIGA_BUS": "kafka", "MITIGA_KAFKA_BOOTSTRAP": stack.kafka.bootstrap,
           "MITIGA_STATE": "redis", "MITIGA_REDIS_URL": stack.redis.url}
    done = subprocess.run([sys.executable, "-m", "mitiga_cli", "models", "rollback", "lstm", "--store",
                           str(stack.model_store)], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"champion {promoted} → {first_version}" in done.stdout and "announced on mitiga.model.rollouts" in done.stdout
    wait_for(lambda: traffic.version() == first_version, 20, "the inference process to serve the earlier version")
    rollouts = [e for e in decoded(stack.kafka.bootstrap, Topic.ROLLOUT, skip_invalid=True) if e.model_name == "lstm"]
    assert (rollouts[-1].version, rollouts[-1].previous_version, rollouts[-1].reason) == (first_version, promoted,
                                                                                           "rollback")
