"""The chart: lint, schema, server-side validation of every rendered manifest, install, helm test."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from tests.k8s.cluster import CHART, NAMESPACE, helm, raw

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ALL_ON = ["--set", "monitoring.serviceMonitor.enabled=true", "--set", "monitoring.prometheusRule.enabled=true",
          "--set", "monitoring.grafanaDashboard.enabled=true", "--set", "retrainer.cron.enabled=true",
          "--set", "inference.autoscaling.enabled=true", "--set", "console.enabled=true",
          "--set", "console.alertmanagerUrl=http://alertmanager.monitoring:9093",
          "--set", "console.alertmanagerPeers[0].namespaceSelector.matchLabels.name=monitoring",
          "--set", "console.prometheusUrl=http://prometheus.monitoring:9090",
          "--set", "console.prometheusPeers[0].namespaceSelector.matchLabels.name=monitoring"]


def test_helm_lint_is_clean(control_plane) -> None:  # type: ignore[no-untyped-def]
    for extra in ([], ALL_ON):
        done = helm(control_plane, "lint", "--strict", str(CHART), *extra)
        assert "[WARNING]" not in done.stdout and "[ERROR]" not in done.stdout, done.stdout


@pytest.mark.parametrize(("values", "message"), [
    (["--set", "inference.replicas=-1"], "/inference/replicas"),
    (["--set", "config.bus=rabbitmq"], "/config/bus"),
    (["--set", "models.lstm.version=latest"], "/models/lstm/version"),
    (["--set", "models.Bad_Name.version=1"], "Bad_Name"),
    (["--set", "retrainer.rollout.timeout=soon"], "/retrainer/rollout/timeout"),
    (["--set", "inference.typo=1"], "typo"),
    (["--set", "inference.grpcPort=70000"], "/inference/grpcPort"),
    (["--set", "inference.modelMemoryBudget=lots"], "/inference/modelMemoryBudget"),
    (["--set", "detector.triggerPolicy=always"], "/detector/triggerPolicy"),
    (["--set", "detector.replicas=0"], "/detector/replicas"),
    (["--set", "promotion.mode=always"], "/promotion/mode"),
    (["--set", "promotion.canaryPercent=100"], "/promotion/canaryPercent"),
])
def test_bad_values_are_refused_with_a_clear_message(control_plane, values, message) -> None:  # type: ignore[no-untyped-def]
    done = helm(control_plane, "install", "bad", str(CHART), "--namespace", NAMESPACE, "--dry-run=server", *values,
                check=False)
    assert done.returncode != 0
    assert "values don't meet the specifications of the schema" in done.stderr and message in done.stderr, done.stderr


def test_every_rendered_manifest_passes_the_api_servers_validation(control_plane, admin) -> None:  # type: ignore[no-untyped-def]
    from kubernetes import dynamic

    rendered = helm(control_plane, "template", "check", str(CHART), "--namespace", NAMESPACE, "--kube-version",
                    control_plane.version, *ALL_ON).stdout
    documents = [d for d in yaml.safe_load_all(rendered) if d]
    kinds = {d["kind"] for d in documents}
    assert {"Deployment", "Service", "ConfigMap", "Job", "Role", "RoleBinding", "ServiceAccount", "NetworkPolicy",
            "PersistentVolumeClaim", "PodDisruptionBudget", "HorizontalPodAutoscaler", "CronJob", "Pod",
            "ServiceMonitor", "PrometheusRule"} <= kinds
    client = dynamic.DynamicClient(admin)
    for doc in documents:
        resource = client.resources.get(api_version=doc["apiVersion"], kind=doc["kind"])
        # server-side dry run with strict field validation: the API server's schemas (the CRDs' for the
        # monitoring kinds) check every field, and unknown fields are errors
        resource.create(body=doc, namespace=NAMESPACE, dry_run="All", field_validation="Strict")
    job = yaml.safe_load(next(d for d in documents if d["metadata"]["name"].endswith("job-template"))["data"]["job.yaml"])
    job["metadata"]["name"] = "template-check"
    client.resources.get(api_version="batch/v1", kind="Job").create(
        body=job, namespace=NAMESPACE, dry_run="All", field_validation="Strict")


def test_install_makes_the_deployments_ready_and_helm_test_passes(control_plane, admin, release) -> None:  # type: ignore[no-untyped-def]
    from kubernetes import client

    apps = client.AppsV1Api(admin)
    for name in ("inference", "detector"):
        deployment = raw(apps.read_namespaced_deployment(f"{release}-mitiga-{name}", NAMESPACE,
                                                         _preload_content=False))
        assert deployment["status"].get("readyReplicas") == deployment["spec"]["replicas"], name
        pod = deployment["spec"]["template"]["spec"]
        container = pod["containers"][0]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    # kwok runs no container: `helm test` runs for real on the real node (tests/node/test_chart_on_node.py); here
    # the hook is checked to be there, a pod of the chart's own image asking the readiness endpoint
    hooks = helm(control_plane, "get", "hooks", release, "--namespace", NAMESPACE).stdout
    assert "helm.sh/hook: test" in hooks and "kind: Pod" in hooks and "/v2/health/ready" in hooks
    status = helm(control_plane, "status", release, "-n", NAMESPACE).stdout
    assert "STATUS: deployed" in status and "kubectl" in status  # NOTES.txt rendered


@pytest.mark.parametrize("grpc_port", [8081, 9000, 0])
def test_the_grpc_port_reaches_the_pod_the_service_and_the_network_policy(control_plane, grpc_port) -> None:  # type: ignore[no-untyped-def]
    rendered = helm(control_plane, "template", "check", str(CHART), "--namespace", NAMESPACE, "--kube-version",
                    control_plane.version, "--set", f"inference.grpcPort={grpc_port}").stdout
    docs = {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(rendered) if d}
    name = "check-mitiga-inference"
    config = docs[("ConfigMap", name)]["data"]
    container = docs[("Deployment", name)]["spec"]["template"]["spec"]["containers"][0]
    service_ports = {p["name"]: p for p in docs[("Service", name)]["spec"]["ports"]}
    policy_ports = [p["port"] for p in docs[("NetworkPolicy", name)]["spec"]["ingress"][0]["ports"]]
    if grpc_port:
        assert config["MITIGA_GRPC_PORT"] == str(grpc_port)
        assert {"name": "grpc", "containerPort": grpc_port} in container["ports"]
        assert service_ports["grpc"] == {"name": "grpc", "port": grpc_port, "targetPort": "grpc", "appProtocol": "grpc"}
        assert policy_ports == [8080, grpc_port]
    else:
        assert "MITIGA_GRPC_PORT" not in config and "grpc" not in service_ports and policy_ports == [8080]
        assert [p["name"] for p in container["ports"]] == ["http"]


@pytest.mark.parametrize("policy", [None, "drift"])
def test_the_detector_gets_its_trigger_policy(control_plane, policy: str | None) -> None:  # type: ignore[no-untyped-def]
    extra = ["--set", f"detector.triggerPolicy={policy}"] if policy else []
    rendered = helm(control_plane, "template", "check", str(CHART), "--namespace", NAMESPACE, "--kube-version",
                    control_plane.version, *extra).stdout
    config = next(d for d in yaml.safe_load_all(rendered) if d and d["kind"] == "ConfigMap"
                  and d["metadata"]["name"].endswith("-detector"))
    assert config["data"]["MITIGA_TRIGGER_POLICY"] == (policy or "performance")


def test_the_promotion_values_reach_the_retrainer_and_the_detector_settings(  # type: ignore[no-untyped-def]
        control_plane, monkeypatch: pytest.MonkeyPatch) -> None:
    from mitiga_detector.settings import DetectorSettings
    from mitiga_retrainer.settings import RetrainerSettings

    rendered = helm(control_plane, "template", "check", str(CHART), "--namespace", NAMESPACE, "--kube-version",
                    control_plane.version, "--set", "promotion.mode=canary", "--set", "promotion.canaryPercent=25",
                    "--set", "promotion.minLabelled=500", "--set-json", "promotion.confidence=0.99",
                    "--set", "promotion.maxHours=24", "--set-json", 'promotion.approvalModels=["air"]',
                    "--set", "promotion.approvalHours=5").stdout
    common = next(d for d in yaml.safe_load_all(rendered) if d and d["kind"] == "ConfigMap"
                  and d["metadata"]["name"].endswith("-common"))
    for key, value in common["data"].items():
        monkeypatch.setenv(key, value)
    retrainer, detector = RetrainerSettings(), DetectorSettings()
    assert (retrainer.promotion_mode, retrainer.promotion_canary_percent) == ("canary", 25.0)
    assert (detector.promotion_min_labelled, detector.promotion_confidence) == (500, 0.99)
    assert detector.promotion_max_hours == 24
    assert retrainer.promotion_approval_models == detector.promotion_approval_models == ["air"]
    assert retrainer.promotion_approval == detector.promotion_approval == "none"
    assert detector.approval_ttl_s == 5 * 3600


@pytest.mark.parametrize(("replicas", "strategy"), [(None, "Recreate"), (3, "RollingUpdate")])
def test_the_detector_runs_as_many_replicas_as_asked(control_plane, replicas: int | None, strategy: str) -> None:  # type: ignore[no-untyped-def]
    extra = ["--set", f"detector.replicas={replicas}"] if replicas else []
    rendered = helm(control_plane, "template", "check", str(CHART), "--namespace", NAMESPACE, "--kube-version",
                    control_plane.version, *extra).stdout
    deployment = next(d for d in yaml.safe_load_all(rendered) if d and d["kind"] == "Deployment"
                      and d["metadata"]["name"].endswith("-detector"))
    assert deployment["spec"]["replicas"] == (replicas or 1)
    assert deployment["spec"]["strategy"]["type"] == strategy


def _token_keys(docs: list[dict[str, Any]]) -> set[str]:
    """The keys of the token Secret: rendered (tokens given as values), or made by the pre-install hook's Job."""
    secrets = [d for d in docs if d["kind"] == "Secret"]
    hooks = [d for d in docs if d["kind"] == "Job" and d["metadata"]["name"].endswith("-tokens")]
    assert len(secrets) + len(hooks) == 1, "the tokens are rendered and made by the hook, or neither"
    if secrets:
        return set(secrets[0]["data"])
    env = {e["name"]: e["value"] for e in hooks[0]["spec"]["template"]["spec"]["containers"][0]["env"]}
    return set(json.loads(env["MITIGA_TOKENS_KEYS"]))


@pytest.mark.parametrize(("required", "value"), [(False, None), (True, "fb-secret"), (True, None)])
def test_the_feedback_token_reaches_only_the_inference_pods(control_plane, required: bool, value: str | None) -> None:  # type: ignore[no-untyped-def]
    extra = ["--set", f"feedbackToken.value={value}"] if value else []
    rendered = helm(control_plane, "template", "check", str(CHART), "--namespace", NAMESPACE, "--kube-version",
                    control_plane.version, "--set", f"feedbackToken.required={str(required).lower()}", *extra).stdout
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    assert _token_keys(docs) == ({"admin-token", "feedback-token"} if required else {"admin-token"})
    has_token = {d["metadata"]["name"]: "MITIGA_FEEDBACK_TOKEN" in [
        e["name"] for c in d["spec"]["template"]["spec"]["containers"] for e in c.get("env", [])]
        for d in docs if d["kind"] == "Deployment"}
    assert has_token.pop("check-mitiga-inference") is required
    assert has_token and not any(has_token.values())  # the detector never sees it ...
    job_template = [d for d in docs if d["kind"] == "ConfigMap" and "job.yaml" in d.get("data", {})]
    assert job_template and "FEEDBACK_TOKEN" not in job_template[0]["data"]["job.yaml"]  # ... nor the retrainer


def test_the_label_sources_secret_is_mounted_in_the_inference_pods_only(control_plane) -> None:  # type: ignore[no-untyped-def]
    rendered = helm(control_plane, "template", "check", str(CHART), "--namespace", NAMESPACE, "--kube-version",
                    control_plane.version, "--set", "feedbackToken.sourcesSecret=crm-labels").stdout
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    mounted = {d["metadata"]["name"]: [v["secret"]["secretName"] for v in d["spec"]["template"]["spec"]["volumes"]
                                       if "secret" in v] for d in docs if d["kind"] == "Deployment"}
    assert mounted.pop("check-mitiga-inference") == ["crm-labels"]
    assert mounted and not any(mounted.values())
    [inference] = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "check-mitiga-inference"]
    [mount] = [m for m in inference["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
               if m["name"] == "label-sources"]
    config = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "check-mitiga-inference")
    assert config["data"]["MITIGA_FEEDBACK_TOKENS_DIR"] == mount["mountPath"] and mount["readOnly"]


@pytest.mark.parametrize("enabled", [False, True])
def test_the_console_is_off_by_default_and_reads_without_credentials(control_plane, enabled: bool) -> None:  # type: ignore[no-untyped-def]
    """On, the console reaches the inference and detector Services by name, mounts the model store read-only,
    gets no ServiceAccount token and no admin token, and the detector's policy admits it."""
    rendered = helm(control_plane, "template", "check", str(CHART), "--namespace", NAMESPACE, "--kube-version",
                    control_plane.version, *(ALL_ON if enabled else [])).stdout
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    console = [d for d in docs if d["metadata"]["name"] == "check-mitiga-console"]
    if not enabled:
        assert console == []
        return
    assert {d["kind"] for d in console} == {"Deployment", "Service", "NetworkPolicy"}
    pod = next(d for d in console if d["kind"] == "Deployment")["spec"]["template"]["spec"]
    [container] = pod["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["MITIGA_INFERENCE_URL"] == "http://check-mitiga-inference:8080"
    assert env["MITIGA_DETECTOR_URL"] == "http://check-mitiga-detector:8081"
    assert env["MITIGA_ALERTMANAGER_URL"] == "http://alertmanager.monitoring:9093"
    assert env["MITIGA_PROMETHEUS_URL"] == "http://prometheus.monitoring:9090"
    egress = next(d for d in console if d["kind"] == "NetworkPolicy")["spec"]["egress"]
    assert {p["port"] for rule in egress for p in rule["ports"]} >= {9090, 9093}  # both reachable, when given
    assert "MITIGA_ADMIN_TOKEN" not in env and pod["automountServiceAccountToken"] is False
    assert next(m for m in container["volumeMounts"] if m["name"] == "models")["readOnly"] is True
    detector_policy = next(d for d in docs if d["kind"] == "NetworkPolicy"
                           and d["metadata"]["name"] == "check-mitiga-detector")
    admitted = [p.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/component")
                for rule in detector_policy["spec"]["ingress"] for p in rule.get("from", [])]
    assert "console" in admitted


def test_a_retrainer_run_that_cannot_succeed_is_not_retried(control_plane) -> None:  # type: ignore[no-untyped-def]
    """Exit 2 (bad options or data, a failed rollout) fails the Job at once; an evicted pod does not count."""
    rendered = helm(control_plane, "template", "check", str(CHART), "--namespace", NAMESPACE, "--kube-version",
                    control_plane.version, "--set", "retrainer.cron.enabled=true").stdout
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    template = yaml.safe_load(next(d for d in docs if d["kind"] == "ConfigMap"
                                   and "job.yaml" in d.get("data", {}))["data"]["job.yaml"])
    cron = next(d for d in docs if d["kind"] == "CronJob")
    for spec in (template["spec"], cron["spec"]["jobTemplate"]["spec"]):
        rules = spec["podFailurePolicy"]["rules"]
        assert {"action": "FailJob", "onExitCodes": {"containerName": "retrainer", "operator": "In",
                                                     "values": [2]}} in rules
        assert {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]} in rules
        assert spec["template"]["spec"]["restartPolicy"] == "Never"


def test_a_pod_is_out_of_the_service_before_it_drains_and_the_kubelet_waits_for_the_drain(control_plane) -> None:  # type: ignore[no-untyped-def]
    rendered = helm(control_plane, "template", "check", str(CHART), "--namespace", NAMESPACE, "--kube-version",
                    control_plane.version).stdout
    docs = {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(rendered) if d}
    pod = docs[("Deployment", "check-mitiga-inference")]["spec"]["template"]["spec"]
    # the server is told first (SIGUSR1 to the container's first process: it drains its keep-alive clients)
    assert pod["containers"][0]["lifecycle"]["preStop"]["exec"]["command"] == ["sh", "-c", "kill -USR1 1; sleep 5"]
    drain = int(docs[("ConfigMap", "check-mitiga-inference")]["data"]["MITIGA_SHUTDOWN_GRACE_S"])
    assert pod["terminationGracePeriodSeconds"] > 5 + drain
    # the retrainer needs no admin token
    job = yaml.safe_load(docs[("ConfigMap", "check-mitiga-job-template")]["data"]["job.yaml"])
    env = job["spec"]["template"]["spec"]["containers"][0].get("env") or []
    assert "MITIGA_ADMIN_TOKEN" not in [e["name"] for e in env]
    done = helm(control_plane, "template", "check", str(CHART), "--kube-version", control_plane.version, "--set",
                "inference.terminationGracePeriodSeconds=20",
                check=False)
    assert done.returncode != 0 and "still draining" in done.stderr


def test_connection_secrets_come_from_secrets_never_from_config_maps(control_plane) -> None:  # type: ignore[no-untyped-def]
    rendered = helm(control_plane, "template", "check", str(CHART), "--namespace", NAMESPACE, "--kube-version",
                    control_plane.version, "--set", "config.redisUrlSecret.name=redis-auth",
                    "--set", "config.kafkaSecurityProtocol=SASL_SSL", "--set", "config.kafkaSasl.username=mitiga",
                    "--set", "config.kafkaSasl.passwordSecret.name=kafka-auth",
                    "--set", "config.kafkaTls.caSecret.name=kafka-ca").stdout
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    common = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "check-mitiga-common")
    assert "MITIGA_REDIS_URL" not in common["data"]
    # the brokers' private CA: from its Secret, mounted read-only where Kafka is used (the retraining Jobs too)
    assert common["data"]["MITIGA_KAFKA_SSL_CAFILE"] == "/etc/mitiga/kafka-ca/ca.crt"
    job = yaml.safe_load(next(d for d in docs if d["kind"] == "ConfigMap"
                              and d["metadata"]["name"] == "check-mitiga-job-template")["data"]["job.yaml"])
    pods = [job["spec"]["template"]["spec"]] + [d["spec"]["template"]["spec"] for d in docs if d["kind"] == "Deployment"
                                                and d["metadata"]["name"] != "check-mitiga-console"]
    for pod in pods:
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert volumes["kafka-ca"]["secret"] == {"secretName": "kafka-ca", "items": [{"key": "ca.crt", "path": "ca.crt"}]}
        assert {"name": "kafka-ca", "mountPath": "/etc/mitiga/kafka-ca", "readOnly": True} in \
            pod["containers"][0]["volumeMounts"]
    assert common["data"]["MITIGA_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert common["data"]["MITIGA_KAFKA_SASL_USERNAME"] == "mitiga"
    for deployment in (d for d in docs if d["kind"] == "Deployment"):
        env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert env["MITIGA_REDIS_URL"]["valueFrom"]["secretKeyRef"] == {"name": "redis-auth", "key": "redis-url"}
        assert env["MITIGA_KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "kafka-auth",
                                                                                 "key": "password"}


def test_egress_to_the_api_server_is_to_its_own_addresses(control_plane, admin) -> None:  # type: ignore[no-untyped-def]
    """At install the chart looks the API server up (the kubernetes Service and its endpoints): the detector and the
    retrainer may reach those addresses, not the whole internet on 443."""
    from kubernetes import client

    done = helm(control_plane, "install", "egress", str(CHART), "--namespace", NAMESPACE, "--dry-run=server")
    docs = [d for d in yaml.safe_load_all(done.stdout.split("MANIFEST:", 1)[1].split("NOTES:", 1)[0]) if d]
    service = client.CoreV1Api(admin).read_namespaced_service("kubernetes", "default")
    slices = client.DiscoveryV1Api(admin).list_namespaced_endpoint_slice(
        "default", label_selector="kubernetes.io/service-name=kubernetes").items
    expected = {f"{service.spec.cluster_ip}/32"} | {f"{a}/32" for s in slices for e in s.endpoints or []
                                                     for a in e.addresses}
    for name in ("egress-mitiga-detector", "egress-mitiga-retrainer"):
        policy = next(d for d in docs if d["kind"] == "NetworkPolicy" and d["metadata"]["name"] == name)
        blocks = {peer["ipBlock"]["cidr"] for rule in policy["spec"]["egress"] for peer in rule.get("to", [])
                  if "ipBlock" in peer}
        assert blocks == expected, (name, blocks)


def test_a_memory_budget_reaches_the_inference_service_as_a_size_it_reads(control_plane) -> None:  # type: ignore[no-untyped-def]
    from mitiga_inference.settings import InferenceSettings

    def config(*extra: str) -> dict[str, str]:
        rendered = helm(control_plane, "template", "check", str(CHART), "--namespace", NAMESPACE, "--kube-version",
                        control_plane.version, *extra).stdout
        docs = {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(rendered) if d}
        return dict(docs[("ConfigMap", "check-mitiga-inference")]["data"])

    assert "MITIGA_MODEL_MEMORY_BUDGET" not in config()
    budget = config("--set", "inference.modelMemoryBudget=1.5GiB")["MITIGA_MODEL_MEMORY_BUDGET"]
    assert InferenceSettings(model_memory_budget=budget).model_memory_budget == 3 * 2**29
