"""The detector's Kubernetes launcher, acting with the detector's ServiceAccount token: a Job per episode that
kwok runs to completion, no second Job for a repeated trigger, and least privilege."""

from __future__ import annotations

import json

import pytest
import yaml

from mitiga_core.jobs import JobSpec, JobState
from tests.k8s.cluster import NAMESPACE, client_as, raw

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def detector_api(control_plane, admin, release):  # type: ignore[no-untyped-def]
    return client_as(control_plane, admin, f"{release}-mitiga-detector")


@pytest.fixture(scope="module")
def job_template(admin, release):  # type: ignore[no-untyped-def]
    """The template the detector mounts from the chart's ConfigMap."""
    from kubernetes import client

    config_map = raw(client.CoreV1Api(admin).read_namespaced_config_map(
        f"{release}-mitiga-job-template", NAMESPACE, _preload_content=False))
    return yaml.safe_load(config_map["data"]["job.yaml"])


@pytest.fixture(scope="module")
def launcher(job_template, detector_api):  # type: ignore[no-untyped-def]
    from mitiga_core.jobs.kubernetes import KubernetesJobLauncher

    return KubernetesJobLauncher(job_template, NAMESPACE, detector_api, ttl_after_finished_s=600)


def test_a_trigger_creates_one_job_that_completes_and_a_repeat_finds_it(launcher, admin) -> None:  # type: ignore[no-untyped-def]
    from kubernetes import client

    from mitiga_core import retrain_request
    from mitiga_detector.trigger import job_name

    name = job_name("lstm", "4f1c2a9e0b7d11ef")
    request = json.dumps({"episodeId": "4f1c2a9e0b7d11ef", "modelName": "lstm", "requestId": name})
    spec = JobSpec(name=name, args=["mitiga_retrainer"], env={retrain_request.ENV: request},
                   labels={"mitiga.io/model": "lstm", "mitiga.io/episode": "4f1c2a9e0b7d", "mitiga.io/trigger": "informed"})
    finished: list[tuple[str, JobState]] = []
    launcher.follow(lambda labels, job, state: finished.append((labels.get("mitiga.io/model", ""), state)))
    assert launcher.launch(spec) is True
    assert launcher.wait(name, 120) == JobState.SUCCEEDED
    assert launcher.launch(spec) is False  # the same episode again: the existing Job, nothing new
    jobs = raw(client.BatchV1Api(admin).list_namespaced_job(NAMESPACE, label_selector="mitiga.io/episode=4f1c2a9e0b7d",
                                                            _preload_content=False))["items"]
    assert [j["metadata"]["name"] for j in jobs] == [name]
    job = jobs[0]
    assert job["metadata"]["labels"]["mitiga.io/trigger"] == "informed"
    assert job["metadata"]["labels"]["app.kubernetes.io/component"] == "retrainer"
    assert job["spec"]["backoffLimit"] == 1 and job["spec"]["activeDeadlineSeconds"] == 3600
    assert job["spec"]["ttlSecondsAfterFinished"] == 600
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["mitiga_retrainer"]
    # the request is the pod's annotation, which the container's MITIGA_RETRAIN_REQUEST reads
    assert job["spec"]["template"]["metadata"]["annotations"] == {"mitiga.io/retrain-request": request}
    [variable] = [e for e in container["env"] if e["name"] == retrain_request.ENV]
    assert variable["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.annotations['mitiga.io/retrain-request']"
    assert job["spec"]["template"]["spec"]["serviceAccountName"].endswith("-retrainer")
    import time

    deadline = time.monotonic() + 30
    while ("lstm", JobState.SUCCEEDED) not in finished and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ("lstm", JobState.SUCCEEDED) in finished  # reported once, for metrics
    launcher.close()


def test_the_detector_account_may_not_read_secrets_or_patch_deployments(detector_api, release) -> None:  # type: ignore[no-untyped-def]
    from kubernetes import client
    from kubernetes.client import ApiException

    with pytest.raises(ApiException) as secrets:
        client.CoreV1Api(detector_api).list_namespaced_secret(NAMESPACE, _preload_content=False)
    assert secrets.value.status == 403
    with pytest.raises(ApiException) as one_secret:
        client.CoreV1Api(detector_api).read_namespaced_secret(f"{release}-mitiga-admin", NAMESPACE,
                                                             _preload_content=False)
    assert one_secret.value.status == 403
    with pytest.raises(ApiException) as patch:
        client.AppsV1Api(detector_api).patch_namespaced_deployment(
            f"{release}-mitiga-inference", NAMESPACE, {"spec": {"replicas": 5}}, _preload_content=False)
    assert patch.value.status == 403
    with pytest.raises(ApiException) as pods:
        client.CoreV1Api(detector_api).list_namespaced_pod(NAMESPACE, _preload_content=False)
    assert pods.value.status == 403
    # what it may do
    client.BatchV1Api(detector_api).list_namespaced_job(NAMESPACE, _preload_content=False)


def test_the_launcher_rides_out_an_api_server_restart(control_plane, launcher) -> None:  # type: ignore[no-untyped-def]
    import threading

    from mitiga_core import retrain_request
    from mitiga_detector.trigger import job_name

    name = job_name("lstm", "9a8b7c6d5e4f3a2b")
    spec = JobSpec(name=name, args=["mitiga_retrainer"], env={retrain_request.ENV: json.dumps({"modelName": "lstm"})},
                   labels={"mitiga.io/model": "lstm"})
    control_plane.apiserver.stop(10)
    restart = threading.Timer(2.0, control_plane.apiserver.start)
    restart.start()
    try:
        assert launcher.launch(spec) is True  # retried with backoff until the API server answers again
    finally:
        restart.join()
    assert launcher.wait(name, 120) == JobState.SUCCEEDED


def test_a_critical_episode_in_the_detector_core_becomes_one_kubernetes_job(launcher, admin, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The trigger's decisions through the real launcher: drift in the detector core creates one labelled Job for
    the episode, which completes; the still-critical windows after it create no other."""
    import numpy as np
    from kubernetes import client

    from tests.detector.conftest import Harness, write_bundle
    from tests.detector.test_core import stream

    h = Harness(tmp_path, launcher=launcher, cooldown_s=0, trigger_policy="drift")  # input drift retrains
    write_bundle(h.store)
    rng = np.random.default_rng(5)
    stream(h, rng, 2)
    stream(h, rng, 8, shift={0: 2.0, 1: 2.0, 2: 2.0})
    jobs = raw(client.BatchV1Api(admin).list_namespaced_job(NAMESPACE, label_selector="mitiga.io/model=tab",
                                                            _preload_content=False))["items"]
    assert len(jobs) == 1
    labels = jobs[0]["metadata"]["labels"]
    assert labels["mitiga.io/trigger"] == "informed" and labels["mitiga.io/episode"]
    assert h.core.state_of("tab")["episode_id"].startswith(labels["mitiga.io/episode"])
    assert launcher.wait(jobs[0]["metadata"]["name"], 120) == JobState.SUCCEEDED
    h.publisher.stop()


def test_the_detector_process_runs_with_the_kubernetes_launcher(control_plane, admin, release, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`python -m mitiga_detector` as the chart configures it (MITIGA_LAUNCHER=kubernetes, the mounted template),
    with the detector's credentials: it starts, follows Jobs, and is ready."""
    from kubernetes import client

    from mitiga_devstack.stack import ServiceProcess
    from tests.k8s.cluster import kubeconfig_as

    template = raw(client.CoreV1Api(admin).read_namespaced_config_map(
        f"{release}-mitiga-job-template", NAMESPACE, _preload_content=False))["data"]["job.yaml"]
    (tmp_path / "job.yaml").write_text(template)
    kubeconfig = kubeconfig_as(control_plane, admin, f"{release}-mitiga-detector", tmp_path / "kubeconfig")
    (tmp_path / "models").mkdir()
    detector = ServiceProcess("detector", "mitiga_detector", tmp_path / "detector", {
        "MITIGA_LAUNCHER": "kubernetes", "MITIGA_JOB_TEMPLATE": str(tmp_path / "job.yaml"),
        "MITIGA_JOB_NAMESPACE": NAMESPACE, "KUBECONFIG": str(kubeconfig),
        "MITIGA_MODEL_STORE_PATH": str(tmp_path / "models"), "MITIGA_LOG_LEVEL": "INFO"})
    try:
        detector.start()
        assert detector.ready()
    finally:
        detector.stop()
    log = detector.log_path.read_text()
    assert "Traceback" not in log and "job follow interrupted" not in log, log[-3000:]


def test_a_refused_launch_releases_the_lock_and_waits_a_backoff(detector_api, job_template, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The API server refuses the Job (the detector's account may not create Jobs in kube-system): the request is
    undone (lock, request id, attempt), counted, and the next critical windows wait the backoff."""
    import numpy as np

    from mitiga_core.jobs.kubernetes import KubernetesJobLauncher
    from tests.detector.conftest import Harness, write_bundle
    from tests.detector.test_core import stream

    elsewhere = KubernetesJobLauncher(job_template, "kube-system", detector_api, ttl_after_finished_s=600)
    h = Harness(tmp_path, launcher=elsewhere, cooldown_s=0, trigger_policy="drift", launch_backoff_s=3600)
    write_bundle(h.store)
    rng = np.random.default_rng(5)
    stream(h, rng, 2)
    stream(h, rng, 8, shift={0: 2.0, 1: 2.0, 2: 2.0})
    assert h.value("mitiga_retrain_triggers_total", model="tab", outcome="launch_failed") == 1
    assert h.value("mitiga_retrain_triggers_total", model="tab", outcome="backoff") >= 1
    assert h.state.get("mitiga:retrain:lock:tab") is None  # the model is not blocked for the lock's TTL
    assert h.state.get("mitiga:retrain:backoff:tab") is not None
    episode = h.core.state_of("tab")["episode_id"]
    assert h.state.get(f"mitiga:retrain:attempts:{episode}") == b"0"  # the attempt was given back
    h.publisher.stop()


@pytest.mark.parametrize("change", ["image", "service_account", "command", "host_path", "privileged"])
def test_the_detector_account_can_create_no_job_but_the_retrainer(detector_api, job_template, change: str) -> None:  # type: ignore[no-untyped-def]
    """The chart's ValidatingAdmissionPolicy, on the real API server: a leaked detector token cannot start an
    arbitrary pod, however the Job is dressed."""
    import copy

    from kubernetes import client
    from kubernetes.client import ApiException

    job = copy.deepcopy(job_template)
    job["metadata"] = {"name": f"evil-{change.replace('_', '-')}", "labels": {"mitiga.io/model": "tab"}}
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    if change == "image":
        container["image"] = "docker.io/library/busybox:latest"
    elif change == "service_account":
        pod["serviceAccountName"] = "default"
    elif change == "command":
        container["args"] = ["http.server"]
    elif change == "host_path":
        pod["volumes"].append({"name": "host", "hostPath": {"path": "/"}})
    elif change == "privileged":
        # (privileged itself the API server refuses on its own here: --allow-privileged is off)
        container["securityContext"] = {**container.get("securityContext", {}), "allowPrivilegeEscalation": True}
    with pytest.raises(ApiException) as refused:
        client.BatchV1Api(detector_api).create_namespaced_job(NAMESPACE, job)
    # refused by one of the chart's two policies (tests/security/test_job_admission.py tries each on its own)
    assert refused.value.status == 422, refused.value.body
    assert "ValidatingAdmissionPolicy 'mitiga-demo-mitiga-retrainer-jobs" in refused.value.body, refused.value.body
