"""The retrain request: one protobuf ``RetrainRequest`` is what a retraining Job receives.

The detector's trigger (automatic, blind and manual requests) builds it and publishes it on ``mitiga.retrain.
requests``; the Job gets the same message in its environment (``MITIGA_RETRAIN_REQUEST``; by hand, ``--request``),
in protobuf's canonical JSON so that ``kubectl get job -o yaml`` shows what was asked; the retrainer derives its
settings from it. On Kubernetes the variable reads the pod's annotation ``mitiga.io/retrain-request``, so the Job's
pod spec is the chart's to the letter. The options a request may carry beyond the message's own fields are
:data:`OPTIONS`.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format

from mitiga_core.errors import InvalidInput
from mitiga_core.pb.mitiga.v1 import events_pb2 as pb

ENV = "MITIGA_RETRAIN_REQUEST"
"""The variable a retraining job reads its request from."""

OPTIONS = frozenset({"epochs", "data_start", "data_end", "promote_version"})
"""Per-request options (an operator's manual retrain; the candidate a promotion request promotes); everything
else comes from the retrainer's settings."""


def to_argument(request: pb.RetrainRequest) -> str:
    """The request as the Job gets it: compact canonical JSON."""
    return json_format.MessageToJson(request, indent=None, sort_keys=True)


def parse(text: str) -> pb.RetrainRequest:
    """A request from :func:`to_argument`'s form; InvalidInput naming what is wrong."""
    request = pb.RetrainRequest()
    try:
        json_format.Parse(text, request)
    except json_format.ParseError as exc:
        raise InvalidInput(f"request: not a RetrainRequest: {exc}") from exc
    if not request.model_name:
        raise InvalidInput("request.model_name: required")
    unknown = sorted(set(request.options) - OPTIONS)
    if unknown:
        raise InvalidInput(f"request.options: {', '.join(unknown)} cannot be set per request "
                           f"(allowed: {', '.join(sorted(OPTIONS))})")
    return request


def settings_fields(request: pb.RetrainRequest) -> dict[str, Any]:
    """The retrainer settings the request sets (fields left empty in the message are not set)."""
    fields: dict[str, Any] = {"model": request.model_name, "base_version": request.base_version,
                              "strategy": request.strategy, "mode": request.mode, "request_id": request.request_id,
                              "episode_id": request.episode_id, "trigger": request.trigger, **request.options}
    return {key: value for key, value in fields.items() if value}
