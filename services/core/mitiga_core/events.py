"""Bus events: protobuf payloads with CloudEvents attributes carried as headers (binary mode).

``encode`` turns a protobuf event into an :class:`Envelope` (key, headers, payload bytes) and
``decode`` turns one back, raising :class:`~mitiga_core.errors.EventDecodeError` on anything it
cannot trust. The header values are compared as plain strings.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final, TypeVar

from google.protobuf.message import DecodeError, Message

from mitiga_core.errors import EventDecodeError
from mitiga_core.pb.mitiga.v1 import events_pb2 as pb

if TYPE_CHECKING:
    from mitiga_core.types import Headers

SPEC_VERSION: Final = "1.0"
CONTENT_TYPE: Final = "application/protobuf"


class Topic:
    """Topic names, one per event kind."""

    INFERENCE: Final = "mitiga.inference.events"
    FEEDBACK: Final = "mitiga.feedback"
    DRIFT: Final = "mitiga.drift.events"
    RETRAIN: Final = "mitiga.retrain.requests"
    ROLLOUT: Final = "mitiga.model.rollouts"
    PROGRESS: Final = "mitiga.retrain.progress"
    DLQ: Final = "mitiga.dlq"


EVENT_TYPES: Final[dict[str, type[Message]]] = {
    "io.mitiga.inference.v1": pb.InferenceEvent,
    "io.mitiga.inference.batch.v1": pb.InferenceEventBatch,
    "io.mitiga.feedback.v1": pb.FeedbackEvent,
    "io.mitiga.drift.v1": pb.DriftEvent,
    "io.mitiga.retrain.v1": pb.RetrainRequest,
    "io.mitiga.rollout.v1": pb.ModelRollout,
    "io.mitiga.retrain.progress.v1": pb.RetrainProgress,
}
_TYPE_OF: Final = {cls.DESCRIPTOR.full_name: ce_type for ce_type, cls in EVENT_TYPES.items()}

M = TypeVar("M", bound=Message)


@dataclass(frozen=True, slots=True)
class Envelope:
    """One message as it travels: partition key, CloudEvents headers and the protobuf payload."""

    payload: bytes
    headers: Headers = field(default_factory=dict)
    key: str | None = None

    @property
    def ce_type(self) -> str:
        return self.headers.get("ce_type", "")

    @property
    def ce_id(self) -> str:
        return self.headers.get("ce_id", "")


def new_id() -> str:
    return uuid.uuid4().hex


def ce_type_of(message: Message) -> str:
    try:
        return _TYPE_OF[message.DESCRIPTOR.full_name]
    except KeyError as exc:
        raise TypeError(f"{message.DESCRIPTOR.full_name} is not a mitiga event") from exc


def encode(message: Message, *, source: str, key: str | None = None, event_id: str | None = None) -> Envelope:
    """Wrap ``message`` with CloudEvents attributes; ``event_id`` defaults to the message's own."""
    ce_id = event_id or getattr(message, "event_id", "") or getattr(message, "request_id", "") or new_id()
    headers = {
        "ce_id": ce_id,
        "ce_type": ce_type_of(message),
        "ce_source": source,
        "ce_specversion": SPEC_VERSION,
        "ce_time": datetime.now(UTC).isoformat(),
        "content-type": CONTENT_TYPE,
    }
    return Envelope(payload=message.SerializeToString(), headers=headers, key=key)


def decode(envelope: Envelope) -> Message:
    """Parse an envelope into its protobuf event, checking the CloudEvents attributes."""
    headers = envelope.headers
    for required in ("ce_id", "ce_type", "ce_source", "ce_specversion"):
        if not headers.get(required):
            raise EventDecodeError(f"missing CloudEvents header {required!r}")
    if headers["ce_specversion"] != SPEC_VERSION:
        raise EventDecodeError(f"unsupported ce_specversion {headers['ce_specversion']!r}")
    if headers.get("content-type", CONTENT_TYPE) != CONTENT_TYPE:
        raise EventDecodeError(f"unsupported content-type {headers.get('content-type')!r}")
    cls = EVENT_TYPES.get(headers["ce_type"])
    if cls is None:
        raise EventDecodeError(f"unknown ce_type {headers['ce_type']!r}")
    message = cls()
    try:
        message.ParseFromString(envelope.payload)
    except DecodeError as exc:
        raise EventDecodeError(f"payload is not a valid {cls.DESCRIPTOR.name}: {exc}") from exc
    return message


def decode_as(envelope: Envelope, cls: type[M]) -> M:
    """Decode and check that the event is of the expected class."""
    message = decode(envelope)
    if not isinstance(message, cls):
        raise EventDecodeError(f"expected {cls.DESCRIPTOR.name}, got {message.DESCRIPTOR.name}")
    return message
