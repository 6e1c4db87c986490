"""Every ServiceAccount's rights, checked as a matrix against the allow-list in ``tests/security/rbac-allowed.yaml``.

An attacker who gets a pod's token gets exactly its account's rights. The test installs the chart on the real API
server, asks the server what each account of the release may do in the namespace (SelfSubjectRulesReview, what
``kubectl auth can-i --list`` prints), subtracts what every authenticated account may do (the namespace's
``default`` account), prints the matrix, and fails on any right that is not in the allow-list, and on any listed
right the chart no longer grants (the list stays the truth)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.k8s.cluster import NAMESPACE, client_as

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ALLOWED = Path(__file__).with_name("rbac-allowed.yaml")


def rights(api: Any) -> set[str]:
    """``verb group/resource[/name]`` for each resource right the account has in the namespace."""
    from kubernetes import client

    review = client.AuthorizationV1Api(api).create_self_subject_rules_review(
        {"spec": {"namespace": NAMESPACE}}, _preload_content=False)
    import json

    status = json.loads(review.data)["status"]
    found = set()
    for rule in status.get("resourceRules", []):
        for verb in rule["verbs"]:
            for group in rule.get("apiGroups", [""]):
                for resource in rule.get("resources", []):
                    names = rule.get("resourceNames") or ["*"]
                    found.update(f"{verb} {group or 'core'}/{resource}/{name}" for name in names)
    return found


def test_every_service_account_has_exactly_the_rights_in_the_allow_list(control_plane, admin, release) -> None:  # type: ignore[no-untyped-def]
    baseline = rights(client_as(control_plane, admin, "default"))
    allowed: dict[str, list[str]] = yaml.safe_load(ALLOWED.read_text())
    matrix = {component: sorted(rights(client_as(control_plane, admin, f"{release}-mitiga-{component}")) - baseline)
              for component in ("inference", "detector", "retrainer")}
    print(yaml.safe_dump(matrix, sort_keys=True))  # the matrix, as `kubectl auth can-i --list` would show it
    for component, granted in matrix.items():
        expected = {right.replace("RELEASE", release) for right in allowed[component]}
        assert set(granted) - expected == set(), f"{component} may do more than the allow-list says"
        assert expected - set(granted) == set(), f"{component}: the allow-list names rights the chart no longer grants"
