"""Arrays and dates out of an inference event (a malformed one belongs in the dead-letter topic)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import numpy as np

from mitiga_core.errors import EventDecodeError

if TYPE_CHECKING:
    from mitiga_core.pb.mitiga.v1 import events_pb2 as pb
    from mitiga_core.types import AnyArray


def matrix(m: pb.Matrix, what: str) -> AnyArray:
    shape = list(m.shape)
    if len(shape) != 2 or shape[0] * shape[1] != len(m.data):
        raise EventDecodeError(f"{what}: shape {shape} does not match {len(m.data)} values")
    return np.asarray(m.data, np.float32).reshape(shape)


def data_time(event: pb.InferenceEvent) -> datetime:
    """The request's date: its ``data_time`` when given, else when it was served."""
    return (event.data_time if event.HasField("data_time") else event.time).ToDatetime(tzinfo=UTC)
