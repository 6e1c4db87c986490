"""The launcher's retry decision on API errors. The race it guards against (a restarted kube-apiserver denies
requests until its RBAC caches sync) cannot be produced on demand, so the calls are scripted here; the real
restart is exercised in tests/k8s/test_jobs.py."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes.client import ApiClient, ApiException
from urllib3.exceptions import NewConnectionError

from mitiga_core.jobs.kubernetes import KubernetesJobLauncher

TEMPLATE = {"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {"spec": {"containers": [{"name": "x"}]}}}}


def scripted(*outcomes: Any) -> tuple[Any, list[int]]:
    calls: list[int] = []

    def op() -> str:
        calls.append(1)
        outcome = outcomes[len(calls) - 1]
        if isinstance(outcome, Exception):
            raise outcome
        return str(outcome)

    return op, calls


def launcher(**kwargs: Any) -> KubernetesJobLauncher:
    return KubernetesJobLauncher(TEMPLATE, "ns", ApiClient(), max_backoff_s=0.01, **kwargs)


def refused() -> NewConnectionError:
    return NewConnectionError(None, "connection refused")  # type: ignore[arg-type]


def test_a_403_right_after_the_api_server_came_back_is_retried() -> None:
    op, calls = scripted(refused(), ApiException(status=403), ApiException(status=401), "created")
    assert launcher()._call("create job", op) == "created"
    assert len(calls) == 4


def test_a_403_from_a_server_that_was_answering_is_final_at_once() -> None:
    op, calls = scripted(ApiException(status=403), "never")
    with pytest.raises(ApiException) as info:
        launcher()._call("create job", op)
    assert info.value.status == 403 and len(calls) == 1


def test_a_403_that_outlasts_the_settling_time_is_final() -> None:
    op, calls = scripted(refused(), *[ApiException(status=403)] * 50)
    with pytest.raises(ApiException):
        launcher(auth_settle_s=0.05)._call("create job", op)
    assert 2 <= len(calls) < 50


def test_other_client_errors_are_never_retried_even_after_an_outage() -> None:
    op, calls = scripted(refused(), ApiException(status=422), "never")
    with pytest.raises(ApiException):
        launcher()._call("create job", op)
    assert len(calls) == 2
