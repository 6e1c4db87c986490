"""The dev-cluster manifests (kustomize) pass the API server's validation; skaffold.yaml and the Dockerfiles
point at what exists."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.integration
@pytest.mark.slow
def test_the_dev_manifests_build_and_pass_the_api_servers_validation(control_plane, admin) -> None:  # type: ignore[no-untyped-def]
    from kubernetes import client, dynamic

    built = subprocess.run([str(control_plane.bin / "kustomize"), "build", "--load-restrictor",
                            "LoadRestrictionsNone", str(ROOT / "manifests")], capture_output=True, text=True,
                           check=True).stdout
    documents = [d for d in yaml.safe_load_all(built) if d]
    names = {(d["kind"], d["metadata"]["name"].rsplit("-", 1)[0] if d["kind"] == "ConfigMap" else d["metadata"]["name"])
             for d in documents}
    assert {("StatefulSet", "kafka"), ("StatefulSet", "redis"), ("Deployment", "prometheus"),
            ("Deployment", "alertmanager"), ("Service", "kafka"), ("Service", "redis")} <= names
    client.CoreV1Api(admin).create_namespace({"metadata": {"name": "dev"}})
    api = dynamic.DynamicClient(admin)
    for doc in documents:
        resource = api.resources.get(api_version=doc["apiVersion"], kind=doc["kind"])
        resource.create(body=doc, namespace="dev", dry_run="All", field_validation="Strict")
    rules = next(d for d in documents if d["kind"] == "ConfigMap" and "mitiga-rules.yaml" in d["data"])
    assert rules["data"]["mitiga-rules.yaml"] == (ROOT / "charts/mitiga/files/prometheus-rules.yaml").read_text()
    redis = next(d for d in documents if d["kind"] == "StatefulSet" and d["metadata"]["name"] == "redis")
    args = redis["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--appendonly" in args and args[args.index("--maxmemory-policy") + 1] == "noeviction"
    assert args[args.index("--maxmemory") + 1] == "400mb"


def test_skaffold_builds_each_service_image_and_sets_values_the_chart_has() -> None:
    config = yaml.safe_load((ROOT / "skaffold.yaml").read_text())
    artifacts = {a["image"]: a for a in config["build"]["artifacts"]}
    assert set(artifacts) == {"mitiga-inference", "mitiga-detector", "mitiga-retrainer", "mitiga-console"}
    for artifact in artifacts.values():
        assert (ROOT / artifact["context"] / artifact["docker"]["dockerfile"]).is_file()
    [release] = config["manifests"]["helm"]["releases"]
    assert (ROOT / release["chartPath"] / "Chart.yaml").is_file()
    values = yaml.safe_load((ROOT / release["chartPath"] / "values.yaml").read_text())
    for key in release["setValueTemplates"]:
        section, field = key.split(".")
        assert field in values[section], key
    assert config["manifests"]["kustomize"]["paths"] == ["manifests"]
    dev = next(p for p in config["profiles"] if p["name"] == "dev")
    for key in dev["patches"][0]["value"]:
        node = values
        for part in re.sub(r"\[\d+\]$", "", key).split("."):
            node = node[part]


@pytest.mark.parametrize("service", ["inference", "detector", "retrainer", "console"])
def test_each_dockerfile_is_multi_stage_pinned_non_root_and_copies_what_exists(service: str) -> None:
    text = (ROOT / "services" / service / "Dockerfile").read_text()
    assert len(re.findall(r"^FROM ", text, re.M)) >= 2
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11\.\d+-slim-\w+$", text, re.M)  # a pinned patch release
    assert re.search(r"^USER 10001:10001$", text, re.M) and text.index("USER") > text.rindex("FROM ")
    assert re.search(r"-c \S*requirements\.lock", text)  # pinned dependencies
    if service != "console":  # the TensorFlow layer: the same instructions in each, so podman builds it once
        shared = (ROOT / "services" / "inference" / "Dockerfile").read_text()
        assert text[text.index("AS tensorflow"):text.index("AS build")] == shared[
            shared.index("AS tensorflow"):shared.index("AS build")]
    assert f'ENTRYPOINT ["python", "-m", "mitiga_{service}"]' in text
    assert "HOME=/tmp" in text  # nothing written outside /tmp and the model store: read-only root works
    for source in re.findall(r"^COPY (?!--from)(.+) \S+$", text, re.M):
        for path in source.split():
            assert (ROOT / path).exists(), f"{service}: COPY {path}"
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert "services" not in ignored and "requirements.lock" not in ignored
    if service == "retrainer":
        assert "COPY --from=tools helm /usr/local/bin/helm" in text and "charts/mitiga" in text  # helm: a build context
        assert "!charts/mitiga" in ignored
