"""The chart on the real node, as an operator installs it: the built images, Kafka and Redis reachable from the pods
(here real servers on the pod network's gateway), the model store on a volume. The kubelet decides readiness from
the services' own probes, `helm test` really calls the readiness endpoint, and a client's requests through the
inference Service become events the detector (a container too) consumes from Kafka."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mitiga_devstack.webhook import WebhookReceiver
from tests.inference.conftest import window_request
from tests.node.conftest import NAMESPACE, describe

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CHART = Path(__file__).resolve().parents[2] / "charts" / "mitiga"
RELEASE = "demo"


def helm(node: Any, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(node.cp.bin / "helm"), "--kubeconfig", str(node.cp.kubeconfig), *args],
                          capture_output=True, text=True, timeout=900, check=False)
    if check:
        assert done.returncode == 0, f"helm {' '.join(args)}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def release(real_node, node_api, images, reference_store: Path,  # type: ignore[no-untyped-def]
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from kubernetes import client

    from mitiga_devstack.k8s import BRIDGE_GATEWAY
    from mitiga_devstack.servers import KafkaServer, RedisServer

    root = tmp_path_factory.mktemp("chart-on-node")
    kafka = KafkaServer(root / "kafka", host=BRIDGE_GATEWAY).start()
    redis = RedisServer(root / "redis", host=BRIDGE_GATEWAY).start()
    models = root / "models"
    shutil.copytree(reference_store, models)
    for path in [models, *models.rglob("*")]:
        path.chmod(0o777 if path.is_dir() else 0o666)
    client.CoreV1Api(node_api).create_persistent_volume({
        "metadata": {"name": "node-models"},
        "spec": {"capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteMany"],
                 "hostPath": {"path": str(models), "type": "Directory"},
                 "persistentVolumeReclaimPolicy": "Retain"}})
    values = {
        "image.inference": images["inference"], "image.detector": images["detector"],
        "image.retrainer": images["retrainer"], "image.pullPolicy": "Never",
        "config.kafkaBootstrap": kafka.bootstrap, "config.redisUrl": redis.url,
        "models.lstm.version": "1",
        # two CPUs on this node: room for a rollout's surge pod and a retrain Job beside the others
        "inference.resources.requests.cpu": "100m", "detector.resources.requests.cpu": "100m",
        "retrainer.resources.requests.cpu": "500m",
        # the loop test: judge the error on 120 labelled rows, train briefly on what came
        "detector.env.MITIGA_MIN_PERFORMANCE_ROWS": "120", "retrainer.env.MITIGA_EPOCHS": "2",
        "retrainer.env.MITIGA_HOLDOUT_ROWS": "30", "retrainer.env.MITIGA_MIN_ROWS": "30",
        "retrainer.env.MITIGA_WINDOW_ROWS": "200",
    }
    sets = [arg for key, value in values.items() for arg in ("--set-string", f"{key}={value}")]
    sets += ["--set", "inference.replicas=1"]
    monitoring: list[Any] = []
    webhook = WebhookReceiver().start()
    try:
        helm(real_node, "install", RELEASE, str(CHART), "--namespace", NAMESPACE, "--wait", "--timeout", "600s",
             *sets)
        monitoring = _monitoring(root, _service_url(node_api, "detector"), webhook.url)
        yield {"kafka": kafka, "redis": redis, "models": models, "webhook": webhook, "prometheus": monitoring[1]}
    finally:
        helm(real_node, "uninstall", RELEASE, "--namespace", NAMESPACE, "--wait", "--timeout", "120s", check=False)
        for server in (*reversed(monitoring), redis, kafka):
            server.stop()
        webhook.stop()


def _monitoring(root: Path, detector: str, webhook: str) -> list[Any]:
    """Prometheus (on this host) scraping the detector pod through its Service with the chart's alert rules (their
    holding times shortened), and Alertmanager sending to ``webhook``: Alertmanager first, then Prometheus."""
    from mitiga_devstack.alerts import AlertSettings, render
    from mitiga_devstack.configs import alertmanager_config, prometheus_config
    from mitiga_devstack.servers import AlertmanagerServer, PrometheusServer

    rules = root / "rules.yaml"
    rules.write_text(render(AlertSettings(drift_for="2s", episode_for="2s")))
    alertmanager = AlertmanagerServer(root / "alertmanager", root / "alertmanager.yml")
    alertmanager_config(alertmanager.config, webhook_url=webhook, group_wait="1s", group_interval="5s")
    prometheus = PrometheusServer(root / "prometheus", root / "prometheus.yml")
    prometheus_config(prometheus.config, rules=rules, alertmanager=f"127.0.0.1:{alertmanager.port}",
                      targets={"mitiga-detector": detector.removeprefix("http://")}, interval="1s")
    return [alertmanager.start(), prometheus.start()]


def _service_url(node_api: Any, component: str) -> str:
    from kubernetes import client

    service = client.CoreV1Api(node_api).read_namespaced_service(f"{RELEASE}-mitiga-{component}", NAMESPACE)
    return f"http://{service.spec.cluster_ip}:{service.spec.ports[0].port}"


class SteadyClient:
    """A client of the inference Service sending small requests every 50 ms in a thread, recording the version
    that answered each and every failure."""

    def __init__(self, url: str) -> None:
        import threading

        from tests.devstack.conftest import Traffic, windows

        self.traffic = Traffic(url)
        self.answered: list[str] = []
        self._x = windows("2012-01-01", "2012-03-01")[0][:4]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._load)
        self._thread.start()

    def _load(self) -> None:
        while not self._stop.is_set():
            served = self.traffic.infer(self._x)
            if served is not None:
                self.answered.append(served["model_version"])
            time.sleep(0.05)

    @property
    def failures(self) -> list[str]:
        return self.traffic.failures

    def stop(self) -> str:
        """Stop; the version the Service serves now."""
        self._stop.set()
        self._thread.join(60)
        version = self.traffic.version()
        self.traffic.close()
        return version


def test_helm_test_reaches_the_readiness_endpoint_from_a_pod(real_node, release) -> None:  # type: ignore[no-untyped-def]
    tested = helm(real_node, "test", RELEASE, "--namespace", NAMESPACE, "--timeout", "300s", "--logs")
    assert "Phase:          Succeeded" in tested.stdout
    assert "/v2/health/ready 200" in tested.stdout  # the test pod's own log: it really asked


def test_requests_through_the_inference_service_reach_the_detector_through_kafka(node_api, release) -> None:  # type: ignore[no-untyped-def]
    inference, detector = _service_url(node_api, "inference"), _service_url(node_api, "detector")
    sent = 0
    with httpx.Client(timeout=30) as http:
        for i in range(10):
            answer = http.post(f"{inference}/v2/models/lstm/infer", json=window_request(8, id=f"node-{i}"))
            assert answer.status_code == 200, answer.text
            sent += 8
        deadline = time.monotonic() + 120
        while True:
            metrics = http.get(f"{detector}/metrics").text
            processed = [line for line in metrics.splitlines()
                         if line.startswith('mitiga_detector_events_total{type="InferenceEvent"}')]
            if processed and float(processed[0].split()[-1]) >= 10:
                break
            assert time.monotonic() < deadline, f"the detector saw {processed} of 10 events"
            time.sleep(1)


def test_a_worse_model_is_retrained_in_a_job_container_and_rolled_out_with_no_failed_request(
        real_node, node_api, release) -> None:  # type: ignore[no-untyped-def]
    """The LSTM trained on 2000-2001 serves 2012 prices, with their ground truth: the detector container opens an
    episode and creates a Job; its pod is then killed (no grace) while the stream goes on, and the Deployment's new
    pod resumes from the checkpoint without a second Job; the retrainer container trains, gates and runs `helm
    upgrade`; new inference pods start with the new version while a client's requests keep flowing, none failing."""
    from kubernetes import client

    from tests.devstack.conftest import Traffic, windows

    core, batch = client.CoreV1Api(node_api), client.BatchV1Api(node_api)
    traffic = Traffic(_service_url(node_api, "inference"))
    first = traffic.version()
    x, y = windows("2012-01-01", "2013-01-01")
    steady = SteadyClient(_service_url(node_api, "inference"))  # a client through the whole episode and rollout
    started = time.monotonic()

    def send(lo: int, hi: int) -> None:
        for i in range(lo, hi, 20):
            served = traffic.infer(x[i:i + 20])
            assert served is not None, traffic.failures
            traffic.feedback(served["id"], y[i:i + 20])

    detector = "app.kubernetes.io/component=detector"
    try:
        send(0, 140)  # past MITIGA_MIN_PERFORMANCE_ROWS: the episode's Job
        deadline = time.monotonic() + 300
        while not batch.list_namespaced_job(NAMESPACE, label_selector="app.kubernetes.io/component=retrainer").items:
            assert time.monotonic() < deadline, f"no retrain Job\n{describe(real_node, node_api)}"
            time.sleep(1)
        [killed] = core.list_namespaced_pod(NAMESPACE, label_selector=detector).items
        core.delete_namespaced_pod(killed.metadata.name, NAMESPACE, grace_period_seconds=0)
        send(140, 200)  # the stream goes on while no detector runs: its events wait in Kafka
        deadline = time.monotonic() + 300
        while not any(p.metadata.name != killed.metadata.name and p.status.container_statuses
                      and p.status.container_statuses[0].ready
                      for p in core.list_namespaced_pod(NAMESPACE, label_selector=detector).items):
            assert time.monotonic() < deadline, f"no new detector pod\n{describe(real_node, node_api)}"
            time.sleep(1)
        deadline = time.monotonic() + 900
        while traffic.version() == first:
            assert time.monotonic() < deadline, f"no new version served\n{describe(real_node, node_api)}"
            time.sleep(2)
        mitigated = time.monotonic() - started
        new = traffic.version()
        deadline = time.monotonic() + 60
        while not steady.answered or steady.answered[-1] != new:  # the steady client reaches the new pods too
            assert time.monotonic() < deadline
            time.sleep(0.5)
    finally:
        steady.stop()
        traffic.close()
    assert steady.failures == [] and len(steady.answered) > 100, steady.failures[:5]
    # one Job for the episode, though the new detector pod read the killed one's last windows again
    jobs = batch.list_namespaced_job(NAMESPACE, label_selector="app.kubernetes.io/component=retrainer").items
    assert len(jobs) == 1 and jobs[0].metadata.labels["mitiga.io/trigger"] == "informed"
    name, deadline = jobs[0].metadata.name, time.monotonic() + 180
    job = jobs[0]
    while not (job.status.succeeded or job.status.failed) and time.monotonic() < deadline:
        time.sleep(1)  # the new version serves once `helm upgrade` returns; the container still reports, then exits
        job = client.BatchV1Api(node_api).read_namespaced_job_status(name, NAMESPACE)
    assert job.status.succeeded == 1, describe(real_node, node_api)
    # the episode's alert, from the detector pod's metrics through Prometheus, reached the Alertmanager webhook
    webhook = release["webhook"]
    deadline = time.monotonic() + 120
    while not [a for a in webhook.alerts() if a["labels"].get("model") == "lstm" and a["status"] == "firing"]:
        assert time.monotonic() < deadline, "no firing lstm alert at the webhook"
        time.sleep(1)
    revisions = helm(real_node, "history", RELEASE, "--namespace", NAMESPACE).stdout.strip().splitlines()[1:]
    assert len(revisions) >= 2 and "deployed" in revisions[-1]  # the retrainer's `helm upgrade`
    print(f"time to mitigation on the real node: {mitigated:.0f} s")


def test_a_rollout_whose_pods_never_start_is_rolled_back_while_the_old_pods_keep_answering(
        real_node, node_api, release) -> None:  # type: ignore[no-untyped-def]
    """An upgrade to an image the node does not have: the new pod never becomes ready, `--atomic` rolls the
    release back, and a client of the Service sees no failure throughout."""
    from kubernetes import client

    from tests.devstack.conftest import Traffic

    probe = Traffic(_service_url(node_api, "inference"))
    before = probe.version()
    probe.close()
    steady = SteadyClient(_service_url(node_api, "inference"))
    try:
        done = helm(real_node, "upgrade", RELEASE, str(CHART), "--namespace", NAMESPACE, "--reuse-values",
                    "--atomic", "--wait", "--timeout", "60s",
                    "--set-string", "image.inference=localhost/mitiga-inference:not-on-this-node", check=False)
    finally:
        version_after = steady.stop()
    assert done.returncode != 0 and "rolled back" in (done.stdout + done.stderr).lower(), done.stderr
    assert steady.failures == [] and len(steady.answered) > 20 and set(steady.answered) == {before}, \
        steady.failures[:5]
    assert version_after == before
    deployment = client.AppsV1Api(node_api).read_namespaced_deployment(f"{RELEASE}-mitiga-inference", NAMESPACE)
    assert "not-on-this-node" not in deployment.spec.template.spec.containers[0].image
    revisions = helm(real_node, "history", RELEASE, "--namespace", NAMESPACE).stdout.strip().splitlines()[1:]
    assert "deployed" in revisions[-1] and "rollback" in revisions[-1].lower()
