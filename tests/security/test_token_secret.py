"""Attack: read the admin or feedback token with the retrainer's ServiceAccount token.

The retrainer must read Helm's release records to upgrade the release, so a token rendered by Helm would be the
retrainer's to read, and so would a Secret in a namespace whose Secrets it may list. The chart keeps both out of
its reach: Helm stores the records in ConfigMaps (``HELM_DRIVER=configmap``), the Role grants no Secret at all, and
the tokens are made in the cluster by a pre-install hook (``mitiga_core.token_secret``), never rendered."""

from __future__ import annotations

import base64
import gzip
import json
from typing import Any

import pytest
import yaml

from mitiga_core.token_secret import ensure_tokens
from tests.k8s.cluster import CHART, NAMESPACE, client_as, helm, raw

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _secret(api: Any, name: str) -> dict[str, str]:
    from kubernetes import client

    secret = raw(client.CoreV1Api(api).read_namespaced_secret(name, NAMESPACE, _preload_content=False))
    return {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}


def _status(call: Any) -> int:
    from kubernetes.client.exceptions import ApiException

    try:
        call()
    except ApiException as exc:
        return int(exc.status)
    return 200


def test_the_retrainer_can_read_neither_token_nor_find_it_in_a_release_record(  # type: ignore[no-untyped-def]
        control_plane, admin, release) -> None:
    from kubernetes import client

    secret_name = f"{release}-mitiga-admin"
    ensure_tokens(admin, NAMESPACE, secret_name, ["admin-token", "feedback-token"])  # the hook's part (kwok runs no pod)
    tokens = _secret(admin, secret_name)
    assert set(tokens) == {"admin-token", "feedback-token"}

    retrainer = client.CoreV1Api(client_as(control_plane, admin, f"{release}-mitiga-retrainer"))
    assert _status(lambda: retrainer.read_namespaced_secret(secret_name, NAMESPACE, _preload_content=False)) == 403
    assert _status(lambda: retrainer.list_namespaced_secret(NAMESPACE, _preload_content=False)) == 403

    # what it may read: every ConfigMap of the namespace, Helm's release records among them
    maps = raw(retrainer.list_namespaced_config_map(NAMESPACE, _preload_content=False))["items"]
    records = [m for m in maps if m["metadata"].get("labels", {}).get("owner") == "helm"
               and m["metadata"]["labels"].get("name") == release]
    assert records, "the release's records are not in ConfigMaps"
    for record in records:
        content = json.loads(gzip.decompress(base64.b64decode(record["data"]["release"])))
        text = json.dumps(content)
        # the record is the whole release: manifests, values, and the hook that made the tokens (not the tokens)
        assert content["manifest"] and any(hook["name"] == f"{release}-mitiga-tokens" for hook in content["hooks"])
        for key, token in tokens.items():
            assert token not in text, f"{key} is in the release record {record['metadata']['name']}"
    for config_map in maps:
        for key, token in tokens.items():
            assert token not in json.dumps(config_map), f"{key} is in ConfigMap {config_map['metadata']['name']}"


def test_the_token_secret_is_made_once_and_a_missing_key_is_added(admin) -> None:  # type: ignore[no-untyped-def]
    assert ensure_tokens(admin, NAMESPACE, "tokens-once", ["admin-token"]) == ["admin-token"]
    first = _secret(admin, "tokens-once")
    assert len(first["admin-token"]) == 40
    assert ensure_tokens(admin, NAMESPACE, "tokens-once", ["admin-token"]) == []  # a re-run changes nothing
    assert _secret(admin, "tokens-once") == first
    # feedback required later (an upgrade): its key is added, the admin token kept
    assert ensure_tokens(admin, NAMESPACE, "tokens-once", ["admin-token", "feedback-token"]) == ["feedback-token"]
    second = _secret(admin, "tokens-once")
    assert second["admin-token"] == first["admin-token"] and len(second["feedback-token"]) == 40
    assert second["feedback-token"] != second["admin-token"]


def test_the_hooks_account_makes_the_secret_and_may_touch_no_other(control_plane, admin) -> None:  # type: ignore[no-untyped-def]
    """The hook's ServiceAccount, Role and RoleBinding as the chart renders them (applied without Helm, so they stay
    after the run): its token makes the Secret, and may read no other Secret."""
    from kubernetes import client, utils

    rendered = helm(control_plane, "template", "hooked", str(CHART), "--namespace", NAMESPACE, "--kube-version",
                    control_plane.version, "--show-only", "templates/secret.yaml").stdout
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    assert {d["kind"] for d in docs} == {"ServiceAccount", "Role", "RoleBinding", "Job"}
    [job] = [d for d in docs if d["kind"] == "Job"]
    env = {e["name"]: e["value"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    for doc in docs:
        if doc["kind"] != "Job":
            utils.create_from_dict(admin, doc, namespace=NAMESPACE)
    hook = client_as(control_plane, admin, job["spec"]["template"]["spec"]["serviceAccountName"])
    added = ensure_tokens(hook, env["MITIGA_TOKENS_NAMESPACE"], env["MITIGA_TOKENS_SECRET"],
                          json.loads(env["MITIGA_TOKENS_KEYS"]), json.loads(env["MITIGA_TOKENS_LABELS"]))
    assert added == ["admin-token", "feedback-token"]
    secret = raw(client.CoreV1Api(admin).read_namespaced_secret("hooked-mitiga-admin", NAMESPACE,
                                                                 _preload_content=False))
    # not Helm's: an uninstall keeps it, a re-install finds it
    assert secret["metadata"]["labels"]["app.kubernetes.io/instance"] == "hooked"
    assert "app.kubernetes.io/managed-by" not in secret["metadata"]["labels"]
    assert ensure_tokens(hook, NAMESPACE, "hooked-mitiga-admin", ["admin-token", "feedback-token"]) == []
    ensure_tokens(admin, NAMESPACE, "someone-elses", ["token"])
    assert _status(lambda: client.CoreV1Api(hook).read_namespaced_secret(
        "someone-elses", NAMESPACE, _preload_content=False)) == 403
    assert _status(lambda: client.CoreV1Api(hook).list_namespaced_secret(NAMESPACE, _preload_content=False)) == 403
