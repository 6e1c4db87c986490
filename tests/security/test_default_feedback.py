"""Attack: forge ground truth with network access only, against a release installed with the chart's defaults.

Ground truth chooses what the next model is trained and judged on. The default chart must require a feedback token
(and generate one, as it does the admin token), so that a client that can merely reach the inference Service is
refused before a byte of its labels is read, and nothing reaches the detector."""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from mitiga_core.events import Topic
from tests.k8s.cluster import CHART, NAMESPACE, helm, raw

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.integration  # the chart rendered by the real helm


def default_release(control_plane: Any) -> list[dict[str, Any]]:
    rendered = helm(control_plane, "template", "victim", str(CHART), "--namespace", NAMESPACE,
                    "--kube-version", control_plane.version).stdout
    return [d for d in yaml.safe_load_all(rendered) if d]


def feedback_token(admin: Any, docs: list[dict[str, Any]], secret_name: str) -> str:
    """The token the default release's inference pods get: the Secret they name is made by the release's hook Job
    (no token is rendered); its program runs here, with the Job's settings, against the real API server."""
    from kubernetes import client

    from mitiga_core.token_secret import TokenSecretSettings, ensure_tokens

    [inference] = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("-inference")]
    env = {e["name"]: e for c in inference["spec"]["template"]["spec"]["containers"] for e in c.get("env", [])}
    assert "MITIGA_FEEDBACK_TOKEN" in env, "the default release serves open feedback"
    ref = env["MITIGA_FEEDBACK_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert [d for d in docs if d["kind"] == "Secret"] == []  # nothing a release record would keep
    [hook] = [d for d in docs if d["kind"] == "Job" and "pre-install" in
              d["metadata"].get("annotations", {}).get("helm.sh/hook", "")]
    [container] = hook["spec"]["template"]["spec"]["containers"]
    hook_env = {e["name"]: e["value"] for e in container["env"]}
    settings = TokenSecretSettings.model_validate({
        "secret": hook_env["MITIGA_TOKENS_SECRET"], "namespace": hook_env["MITIGA_TOKENS_NAMESPACE"],
        "keys": json.loads(hook_env["MITIGA_TOKENS_KEYS"])})
    assert (settings.secret, settings.namespace) == (ref["name"], NAMESPACE) and ref["key"] in settings.keys
    ensure_tokens(admin, NAMESPACE, secret_name, settings.keys)
    secret = raw(client.CoreV1Api(admin).read_namespaced_secret(secret_name, NAMESPACE, _preload_content=False))
    return base64.b64decode(secret["data"][ref["key"]]).decode()


def test_with_the_default_chart_network_access_alone_cannot_send_ground_truth(control_plane, admin,  # type: ignore[no-untyped-def]
                                                                              tmp_path: Path) -> None:
    from tests.inference.conftest import start_service

    docs = default_release(control_plane)
    token = feedback_token(admin, docs, "victim-one")
    assert len(token) >= 32 and token != feedback_token(admin, docs, "victim-two")  # generated, per release
    svc = start_service(tmp_path, feedback_token=token)
    forged = {"request_id": "r-1", "ground_truth": [1.0]}
    try:
        with svc.client() as client:
            for headers, status in (({}, 401), ({"Authorization": "Bearer s3cret"}, 403),  # nor the admin token
                                    ({"Authorization": f"Bearer {token[:-1]}"}, 403)):
                refused = client.post("/v2/models/lstm/feedback", json=forged, headers=headers)
                assert refused.status_code == status, refused.text
            # the label owner's system, with the token, gets past the guard (to "no such model" here)
            owner = client.post("/v2/models/lstm/feedback", json=forged, headers={"Authorization": f"Bearer {token}"})
            assert owner.status_code == 404, owner.text
    finally:
        svc.running.stop()
    assert svc.bus.messages(Topic.FEEDBACK) == []


def test_a_release_that_opens_feedback_is_warned_in_its_notes(control_plane) -> None:  # type: ignore[no-untyped-def]
    def notes(*values: str) -> str:
        return helm(control_plane, "install", "victim", str(CHART), "--namespace", NAMESPACE, "--dry-run=client",
                    *values).stdout.split("NOTES:", 1)[1]

    assert "WARNING: feedback is open" not in notes() and "feedback-token" in notes()
    opened = notes("--set", "feedbackToken.required=false")
    assert "WARNING: feedback is open" in opened and "feedback-token" not in opened


def test_make_up_requires_a_feedback_token_of_its_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`make up` (a laptop's stack, reachable by whatever runs there) generates both tokens, or takes them from the
    environment; the feedback token reaches the inference service only."""
    from mitiga_devstack.__main__ import tokens
    from mitiga_devstack.stack import DevStack

    monkeypatch.delenv("MITIGA_ADMIN_TOKEN", raising=False)
    monkeypatch.delenv("MITIGA_FEEDBACK_TOKEN", raising=False)
    (admin, feedback), (_, again) = tokens(), tokens()
    assert feedback != again and admin != feedback
    stack = DevStack(tmp_path / "stack", tmp_path / "models", admin_token=admin, feedback_token=feedback)
    assert stack.inference.env["MITIGA_FEEDBACK_TOKEN"] == feedback
    assert stack.inference.env["MITIGA_ADMIN_TOKEN"] == admin
    assert "MITIGA_FEEDBACK_TOKEN" not in stack.detector.env
    monkeypatch.setenv("MITIGA_FEEDBACK_TOKEN", "from-the-operator")
    assert tokens()[1] == "from-the-operator"
