"""manifests/ and the chart on the real node, as an operator installs them: Kafka, Redis, Prometheus and
Alertmanager as pods (stand-in images from Debian's packages: no registry serves the upstream ones here), the built
service images, the model store on a volume. The pods reach Kafka and Redis by their Service names. The kubelet
decides readiness from the services' own probes, `helm test` really calls the readiness endpoint, a client's
requests through the inference Service become events the detector (a container too) consumes from Kafka, and its
metrics reach the Prometheus pod."""

from __future__ import annotations

import base64
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.inference.conftest import window_request
from tests.node.conftest import NAMESPACE, describe

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.node]

CHART = Path(__file__).resolve().parents[2] / "charts" / "mitiga"
RELEASE = "demo"



def helm(node: Any, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    from mitiga_devstack.cluster import helm as run

    done = run(node.cp, *args, check=False)
    if check:
        assert done.returncode == 0, f"helm {' '.join(args)}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def release(real_node, node_api, images, reference_store: Path,  # type: ignore[no-untyped-def]
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from kubernetes import client

    from mitiga_devstack.alerts import AlertSettings, render
    from mitiga_devstack.cluster import InstallError, install_dependencies, install_release

    root = tmp_path_factory.mktemp("chart-on-node")
    models = root / "models"
    shutil.copytree(reference_store, models)
    for path in [models, *models.rglob("*")]:
        path.chmod(0o777 if path.is_dir() else 0o666)
    client.CoreV1Api(node_api).create_persistent_volume({
        "metadata": {"name": "node-models"},
        "spec": {"capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteMany"],
                 "hostPath": {"path": str(models), "type": "Directory"},
                 "persistentVolumeReclaimPolicy": "Retain"}})
    # the alert rules' holding times shortened, so the episode's alert fires within the test
    try:
        deps = install_dependencies(real_node.cp, node_api, NAMESPACE, root / "manifests", images,
                                    rules=render(AlertSettings(page_for="1s", drift_for="2s")),
                                    scrape={"mitiga-detector": f"{RELEASE}-mitiga-detector:8081"})
    except InstallError as exc:
        pytest.fail(f"manifests/ did not come up: {exc}\n{describe(real_node, node_api)}")
    values: dict[str, str | int] = {
        "image.inference": images["inference"], "image.detector": images["detector"],
        "image.retrainer": images["retrainer"], "image.pullPolicy": "Never",
        "config.kafkaBootstrap": deps.kafka_bootstrap, "config.redisUrl": deps.redis_url,
        "models.lstm.version": "1", "inference.replicas": 1,
        # only the Prometheus pod may scrape the detector (the default: any pod of any namespace)
        "networkPolicy.metricsFrom[0].namespaceSelector": None,
        "networkPolicy.metricsFrom[0].podSelector.matchLabels.app\\.kubernetes\\.io/name": "prometheus",
        # two CPUs on this node: room for a rollout's surge pod and a retrain Job beside the others
        "inference.resources.requests.cpu": "100m", "detector.resources.requests.cpu": "100m",
        "retrainer.resources.requests.cpu": "500m",
        # the loop test: judge the error on 120 labelled rows, train briefly on what came
        "detector.env.MITIGA_MIN_PERFORMANCE_ROWS": "120", "retrainer.env.MITIGA_EPOCHS": "2",
        "retrainer.env.MITIGA_HOLDOUT_ROWS": "30", "retrainer.env.MITIGA_MIN_ROWS": "30",
        "retrainer.env.MITIGA_WINDOW_ROWS": "200",
    }
    try:
        try:
            install_release(real_node.cp, NAMESPACE, RELEASE, values)
        except InstallError as exc:
            pytest.fail(f"{exc}\n{describe(real_node, node_api)}")
        # the chart requires a feedback token and its pre-install hook made it, in a pod: read it as an operator would
        secret = client.CoreV1Api(node_api).read_namespaced_secret(f"{RELEASE}-mitiga-admin", NAMESPACE)
        assert "app.kubernetes.io/managed-by" not in (secret.metadata.labels or {})  # the hook's, not rendered
        feedback_token = base64.b64decode(secret.data["feedback-token"]).decode()
        yield {"models": models, "webhook": deps.webhook, "feedback_token": feedback_token,
               "prometheus": _service_url(node_api, "prometheus", release=None)}
    finally:
        helm(real_node, "uninstall", RELEASE, "--namespace", NAMESPACE, "--wait", "--timeout", "120s", check=False)
        deps.stop()


def _service_url(node_api: Any, component: str, release: str | None = RELEASE) -> str:
    from mitiga_devstack.cluster import service_url

    return service_url(node_api, NAMESPACE, f"{release}-mitiga-{component}" if release else component)


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
        # the Prometheus pod found the detector pod through the API (manifests/prometheus) and scraped it
        query = 'sum(mitiga_detector_events_total{job="mitiga-detector",type="InferenceEvent"})'
        deadline = time.monotonic() + 120
        while True:
            result = http.get(f"{release['prometheus']}/api/v1/query", params={"query": query}).json()
            samples = result["data"]["result"]
            if samples and float(samples[0]["value"][1]) >= 10:
                break
            if time.monotonic() > deadline:
                targets = http.get(f"{release['prometheus']}/api/v1/targets").json()["data"]["activeTargets"]
                health = [(t["scrapeUrl"], t["health"], t.get("lastError"), t.get("lastScrape")) for t in targets]
                raise AssertionError(f"Prometheus: {result}; its targets: {health}")
            time.sleep(2)


PROBE = """
import socket, sys, threading, time

def probe(target):
    host, port = target.rsplit(":", 1)
    deadline, outcome = time.monotonic() + 15, "closed"
    while time.monotonic() < deadline:  # a new pod is known to the policy agent a moment after it starts
        try:
            socket.create_connection((host, int(port)), timeout=2).close()
            outcome = "open"
            break
        except OSError as exc:
            outcome = f"closed ({exc})"
            time.sleep(1)
    print(target, outcome, flush=True)

threads = [threading.Thread(target=probe, args=(t,)) for t in sys.argv[1:]]
for t in threads: t.start()
for t in threads: t.join()
"""


def test_a_pod_outside_the_allowed_peers_reaches_the_inference_service_and_nothing_else(  # type: ignore[no-untyped-def]
        real_node, node_api, images, release) -> None:
    """The NetworkPolicies are enforced on the node (kube-router's controller): a pod of the release's namespace that
    is none of the allowed peers reaches the inference Service (open to any client by default), and neither Redis,
    nor Kafka, nor the detector's API and metrics (open to the Prometheus pod only here)."""
    from kubernetes import client

    targets = {name: _service_url(node_api, name, release=None if name in ("redis", "kafka") else RELEASE)
               .removeprefix("http://") for name in ("inference", "detector", "redis", "kafka")}
    core = client.CoreV1Api(node_api)
    core.create_namespaced_pod(NAMESPACE, {
        "metadata": {"name": "intruder", "labels": {"app": "intruder"}},
        "spec": {"restartPolicy": "Never", "automountServiceAccountToken": False, "containers": [{
            "name": "probe", "image": images["inference"], "imagePullPolicy": "Never",
            "command": ["python", "-c", PROBE, *targets.values()]}]}})
    try:
        deadline = time.monotonic() + 180
        while core.read_namespaced_pod("intruder", NAMESPACE).status.phase not in ("Succeeded", "Failed"):
            assert time.monotonic() < deadline, describe(real_node, node_api)
            time.sleep(1)
        log = core.read_namespaced_pod_log("intruder", NAMESPACE)
    finally:
        core.delete_namespaced_pod("intruder", NAMESPACE, grace_period_seconds=0)
    reached = {name: f"{address} open" in log for name, address in targets.items()}
    assert reached == {"inference": True, "detector": False, "redis": False, "kafka": False}, log


def test_a_worse_model_is_retrained_in_a_job_container_and_rolled_out_with_no_failed_request(
        real_node, node_api, release) -> None:  # type: ignore[no-untyped-def]
    """The LSTM trained on 2000-2001 serves 2012 prices, with their ground truth: the detector container opens an
    episode and creates a Job; its pod is then killed (no grace) while the stream goes on, and the Deployment's new
    pod resumes from the checkpoint without a second Job; the retrainer container trains, gates and runs `helm
    upgrade`; new inference pods start with the new version while a client's requests keep flowing, none failing."""
    from kubernetes import client

    from tests.devstack.conftest import Traffic, windows

    core, batch = client.CoreV1Api(node_api), client.BatchV1Api(node_api)
    traffic = Traffic(_service_url(node_api, "inference"), feedback_token=release["feedback_token"])
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
