"""The retrainer's Helm rollout with the retrainer's ServiceAccount: a new version rolls the inference pods; an
upgrade that cannot become ready is rolled back and the old version stays."""

from __future__ import annotations

import json
import os

import pytest

from mitiga_devstack.cluster import HELM_ENV
from mitiga_retrainer.rollout import RolloutFailed, helm_upgrade
from mitiga_retrainer.settings import RetrainerSettings
from tests.k8s.cluster import CHART, NAMESPACE, helm, kubeconfig_as, raw

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def retrainer_settings(control_plane, admin, release, tmp_path_factory):  # type: ignore[no-untyped-def]
    kubeconfig = kubeconfig_as(control_plane, admin, f"{release}-mitiga-retrainer",
                               tmp_path_factory.mktemp("retrainer") / "kubeconfig")
    return RetrainerSettings(model="lstm", rollout="helm", helm_binary=str(control_plane.helm), helm_release=release,
                             helm_chart=str(CHART), helm_namespace=NAMESPACE, helm_timeout="90s",
                             helm_extra_args=["--kubeconfig", str(kubeconfig)])


def _served(admin, release: str) -> tuple[dict[str, str], set[str]]:  # type: ignore[no-untyped-def]
    """The pinned versions in the inference ConfigMap, and the pod-template hashes of the ready inference pods."""
    from kubernetes import client

    config_map = raw(client.CoreV1Api(admin).read_namespaced_config_map(f"{release}-mitiga-inference", NAMESPACE,
                                                                       _preload_content=False))
    pods = raw(client.CoreV1Api(admin).list_namespaced_pod(
        NAMESPACE, label_selector="app.kubernetes.io/component=inference", _preload_content=False))["items"]
    ready = {p["metadata"]["labels"]["pod-template-hash"] for p in pods
             if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")}
    return json.loads(config_map["data"]["MITIGA_MODEL_VERSIONS"]), ready


def _checksum(admin, release: str) -> str:  # type: ignore[no-untyped-def]
    from kubernetes import client

    deployment = raw(client.AppsV1Api(admin).read_namespaced_deployment(f"{release}-mitiga-inference", NAMESPACE,
                                                                       _preload_content=False))
    return str(deployment["spec"]["template"]["metadata"]["annotations"]["checksum/config"])


def test_a_promoted_version_rolls_the_inference_pods(control_plane, admin, release, retrainer_settings) -> None:  # type: ignore[no-untyped-def]
    before_versions, before_pods = _served(admin, release)
    before_checksum = _checksum(admin, release)
    helm_upgrade(retrainer_settings, "lstm", "2")
    after_versions, after_pods = _served(admin, release)
    assert before_versions == {"lstm": "1"} and after_versions == {"lstm": "2"}
    assert _checksum(admin, release) != before_checksum
    assert after_pods and after_pods.isdisjoint(before_pods)  # every serving pod is a new one
    history = json.loads(helm(control_plane, "history", release, "-n", NAMESPACE, "-o", "json").stdout)
    assert history[-1]["status"] == "deployed" and history[-1]["description"] == "Upgrade complete"
    # the retrainer may not read where the API server is; its upgrade keeps the addresses found at install
    from kubernetes import client

    policy = raw(client.NetworkingV1Api(admin).read_namespaced_network_policy(
        f"{release}-mitiga-detector", NAMESPACE, _preload_content=False))
    blocks = {peer["ipBlock"]["cidr"] for rule in policy["spec"]["egress"] for peer in rule.get("to", [])
              if "ipBlock" in peer}
    assert blocks and "0.0.0.0/0" not in blocks and all(b.endswith("/32") for b in blocks)


def test_an_upgrade_that_cannot_become_ready_rolls_back_and_the_old_version_stays(  # type: ignore[no-untyped-def]
        control_plane, admin, release, retrainer_settings) -> None:
    served_before = _served(admin, release)[0]
    # pods that no node can take: --wait times out and --atomic rolls back
    failing = retrainer_settings.model_copy(update={
        "helm_timeout": "15s",
        "helm_extra_args": [*retrainer_settings.helm_extra_args, "--set", "inference.nodeSelector.pool=none"]})
    with pytest.raises(RolloutFailed, match="failed"):
        helm_upgrade(failing, "lstm", "3")
    assert _served(admin, release)[0] == served_before
    history = json.loads(helm(control_plane, "history", release, "-n", NAMESPACE, "-o", "json").stdout)
    assert history[-1]["status"] == "deployed" and "Rollback" in history[-1]["description"]
    assert any(h["status"] == "failed" for h in history)


def test_a_retrainer_looking_in_the_wrong_helm_storage_says_which_driver_to_install_with(  # type: ignore[no-untyped-def]
        admin, release, retrainer_settings) -> None:
    """The release is installed with HELM_DRIVER=configmap; a retrainer told ``secret`` finds no release there (its
    token may not even list Secrets) and says so, naming the driver, instead of Helm's "has no deployed releases"."""
    served_before = _served(admin, release)[0]
    wrong = retrainer_settings.model_copy(update={"helm_driver": "secret"})
    with pytest.raises(RolloutFailed, match=r"(?s)not found in Helm.s secret storage .*HELM_DRIVER=secret"):
        helm_upgrade(wrong, "lstm", "9")
    assert _served(admin, release)[0] == served_before


def test_a_release_left_pending_by_a_killed_upgrade_is_rolled_back_then_upgraded(  # type: ignore[no-untyped-def]
        control_plane, admin, release, retrainer_settings) -> None:
    """A retrainer killed in the middle of ``helm upgrade`` leaves the release pending-upgrade; the next run rolls
    it back to what was deployed, then upgrades."""
    import signal
    import subprocess
    import time

    served_before = _served(admin, release)[0]
    # an upgrade that waits for pods no node can take, killed once Helm has marked the release pending
    upgrade = subprocess.Popen([str(control_plane.helm), "--kubeconfig", str(control_plane.kubeconfig), "upgrade",
                                release, str(CHART), "-n", NAMESPACE, "--reuse-values", "--wait", "--timeout", "120s",
                                "--set", "inference.nodeSelector.pool=none"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, **HELM_ENV})

    def status() -> str:
        done = helm(control_plane, "status", release, "-n", NAMESPACE, "-o", "json")
        return str(json.loads(done.stdout)["info"]["status"])

    deadline = time.monotonic() + 60
    while status() != "pending-upgrade":
        assert upgrade.poll() is None and time.monotonic() < deadline, "the upgrade never went pending"
        time.sleep(0.2)
    upgrade.send_signal(signal.SIGKILL)
    upgrade.wait(10)
    assert status() == "pending-upgrade"
    version = str(int(served_before["lstm"]) + 10)
    helm_upgrade(retrainer_settings, "lstm", version)
    assert status() == "deployed" and _served(admin, release)[0]["lstm"] == version
    history = json.loads(helm(control_plane, "history", release, "-n", NAMESPACE, "-o", "json").stdout)
    # the killed revision keeps its status in the history; the rollback after it repaired the release
    assert [h["status"] for h in history[-3:]] == ["pending-upgrade", "superseded", "deployed"]
    assert "Rollback" in history[-2]["description"]


def _retrain_job(tmp_path, settings: RetrainerSettings):  # type: ignore[no-untyped-def]
    """A retraining job on a concept change, with the real bus and state stand-ins of one process."""
    from mitiga_core.bus import InMemoryBus
    from mitiga_core.labelled import LabelledLog
    from mitiga_core.state import InMemoryStateStore
    from tests.retrainer.conftest import regressor_store
    from tests.retrainer.test_flow import production

    store = regressor_store(tmp_path, "m")
    state, bus = InMemoryStateStore(), InMemoryBus()
    data = production(slope=-1.0)
    log = LabelledLog(state)
    for x, y, when in zip(data.x, data.y, data.dates, strict=True):
        log.append("m", x[None, :], y[None, :], str(when))
    job = settings.model_copy(update={"model": "m", "strategy": "sliding_window", "window_rows": 200, "epochs": 20,
                                      "holdout_rows": 60, "request_id": "req-k8s", "trigger": "informed"})
    return store, state, bus, job


def test_a_retraining_job_promotes_and_rolls_out_through_helm(control_plane, admin, release, retrainer_settings,  # type: ignore[no-untyped-def]
                                                              tmp_path) -> None:
    from mitiga_core.events import Topic, decode_as
    from mitiga_core.pb.mitiga.v1 import events_pb2 as pb
    from mitiga_retrainer.job import run_job

    store, state, bus, job = _retrain_job(tmp_path, retrainer_settings)
    result = run_job(job, store=store, state=state, bus=bus)
    assert result.version == "2" and store.champion("m") == "2"
    assert _served(admin, release)[0]["m"] == "2"  # the release now pins the new version
    assert [decode_as(e, pb.ModelRollout).version for e in bus.messages(Topic.ROLLOUT)] == ["2"]


def test_a_retraining_job_whose_rollout_fails_restores_the_champion(control_plane, admin, release,  # type: ignore[no-untyped-def]
                                                                    retrainer_settings, tmp_path) -> None:
    from mitiga_core.events import Topic, decode_as
    from mitiga_core.pb.mitiga.v1 import events_pb2 as pb
    from mitiga_retrainer.job import JobFailed, run_job

    failing = retrainer_settings.model_copy(update={
        "helm_timeout": "15s",
        "helm_extra_args": [*retrainer_settings.helm_extra_args, "--set", "inference.nodeSelector.pool=none"]})
    store, state, bus, job = _retrain_job(tmp_path, failing)
    served_before = _served(admin, release)[0]
    with pytest.raises(JobFailed, match="helm upgrade"):
        run_job(job, store=store, state=state, bus=bus)
    assert store.champion("m") == "1"  # Helm rolled back; the store follows
    assert store.decisions("m")[-1]["rollout"] == "failed"
    assert _served(admin, release)[0] == served_before
    assert bus.messages(Topic.ROLLOUT) == []  # nothing announced as live
    statuses = [decode_as(e, pb.RetrainProgress).status for e in bus.messages(Topic.PROGRESS)]
    assert statuses[-1] == "rollout_failed"


def test_the_retrainer_may_change_the_charts_deployments_and_config_maps_and_no_other(  # type: ignore[no-untyped-def]
        control_plane, admin, release) -> None:
    from kubernetes import client
    from kubernetes.client import ApiException

    from tests.k8s.cluster import client_as

    retrainer = client_as(control_plane, admin, f"{release}-mitiga-retrainer")
    apps, core = client.AppsV1Api(admin), client.CoreV1Api(admin)
    labels = {"app": "other"}
    apps.create_namespaced_deployment(NAMESPACE, {
        "metadata": {"name": "other-app", "labels": labels},
        "spec": {"replicas": 0, "selector": {"matchLabels": labels}, "template": {
            "metadata": {"labels": labels}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}})
    core.create_namespaced_config_map(NAMESPACE, {"metadata": {"name": "other-config"}, "data": {"a": "1"}})
    try:
        for patch in (lambda: client.AppsV1Api(retrainer).patch_namespaced_deployment(
                          "other-app", NAMESPACE, {"spec": {"replicas": 1}}),
                      lambda: client.CoreV1Api(retrainer).patch_namespaced_config_map(
                          "other-config", NAMESPACE, {"data": {"a": "2"}})):
            with pytest.raises(ApiException) as refused:
                patch()
            assert refused.value.status == 403
        # its own: allowed (a no-op patch of the inference ConfigMap and Deployment)
        client.CoreV1Api(retrainer).patch_namespaced_config_map(f"{release}-mitiga-inference", NAMESPACE,
                                                                {"metadata": {"labels": {"probe": "1"}}})
        client.AppsV1Api(retrainer).patch_namespaced_deployment(f"{release}-mitiga-inference", NAMESPACE,
                                                                {"metadata": {"labels": {"probe": "1"}}})
    finally:
        apps.delete_namespaced_deployment("other-app", NAMESPACE)
        core.delete_namespaced_config_map("other-config", NAMESPACE)


def test_a_release_without_the_default_model_takes_the_retrainers_upgrade(control_plane, admin, release) -> None:  # type: ignore[no-untyped-def]
    """``models.lstm=null`` removes the chart's default model (how an operator serves only their own); the
    retrainer's ``helm upgrade --reuse-values`` then carries that null along, which the values schema refused
    (found on the real node: the air-quality regressor's promoted version never rolled out)."""
    name = "aironly"
    helm(control_plane, "install", name, str(CHART), "--namespace", NAMESPACE, "--wait", "--timeout", "180s",
         "--set", "models.lstm=null", "--set-string", "models.air.version=1",
         "--set-string", f"modelStore.existingClaim={release}-mitiga-models")
    try:
        assert _served(admin, name)[0] == {"air": "1"}
        settings = RetrainerSettings(model="air", rollout="helm", helm_binary=str(control_plane.helm),
                                     helm_release=name, helm_chart=str(CHART), helm_namespace=NAMESPACE,
                                     helm_timeout="90s", helm_extra_args=["--kubeconfig", str(control_plane.kubeconfig)])
        helm_upgrade(settings, "air", "2")
        assert _served(admin, name)[0] == {"air": "2"}
    finally:
        helm(control_plane, "uninstall", name, "--namespace", NAMESPACE, "--wait", check=False)


def test_the_rollback_flag_is_one_this_helm_documents(control_plane) -> None:  # type: ignore[no-untyped-def]
    """Helm 4 renamed ``--atomic`` to ``--rollback-on-failure`` (the old name is hidden there, deprecated): the
    retrainer passes the name the Helm it runs documents (``make matrix`` runs this suite with Helm 3 and 4)."""
    import subprocess

    from mitiga_retrainer.rollout import helm_command

    settings = RetrainerSettings(model="m", rollout="helm", helm_binary=str(control_plane.helm), helm_release="r")
    command = helm_command(settings, "m", "2")
    flag = next(a for a in command if a in ("--atomic", "--rollback-on-failure"))
    documented = subprocess.run([str(control_plane.helm), "upgrade", "--help"], capture_output=True, text=True,
                                check=True).stdout
    assert f"  {flag} " in documented
    if flag == "--rollback-on-failure":  # Helm 4: client-side apply and the workloads' wait, as with Helm 3
        assert "--server-side=false" in command and "--wait=legacy" in command
