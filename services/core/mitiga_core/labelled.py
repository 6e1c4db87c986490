"""Labelled production data: inputs joined with their ground truth, kept per model in the state store.

The detector appends a record for every prediction whose feedback it joins; the retrainer reads them back as
training rows. A record is compact: a short JSON header (date, source request, label source, shapes) then the inputs
and the truth as little-endian float32, so a row of 50 inputs costs about 200 bytes instead of about 1 kB of JSON
floats.
The list is bounded by ``max_requests`` records and, per model, by ``max_bytes`` (the record count it keeps is the
byte budget over the size of the record just written, so a stream of requests of one size stays within it).
Records written by earlier versions as JSON (``{"x": ..., "y": ..., "t": ...}``) are still read.
"""

from __future__ import annotations

import json
import struct
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from mitiga_core.bundle import TrainingData
from mitiga_core.state.base import Write

if TYPE_CHECKING:
    from mitiga_core.state import StateStore
    from mitiga_core.types import FloatArray

MAGIC = b"MTL1"
_HEAD = struct.Struct("<4sI")  # magic, header length


def _key(model: str) -> str:
    return f"mitiga:labelled:{model}"


class Record(NamedTuple):
    x: FloatArray
    y: FloatArray
    when: str
    source: str
    """The request the rows came from ('' for records without one): the gate measures how much of its holdout
    one request contributes."""
    meta: dict[str, str] = {}
    """Other short fields of the record (a stored prediction's model version and event id)."""


def encode_record(x: FloatArray, y: FloatArray, when: str, source: str = "", **meta: str) -> bytes:
    """Rows as float32 behind a short JSON header: the format of labelled rows and of stored predictions."""
    x32 = np.ascontiguousarray(x, "<f4")
    y32 = np.ascontiguousarray(np.asarray(y).reshape(len(x32), -1), "<f4")
    header = json.dumps({"t": when, "r": source, "x": list(x32.shape), "y": list(y32.shape), **meta}).encode()
    return _HEAD.pack(MAGIC, len(header)) + header + x32.tobytes() + y32.tobytes()


def decode_record(raw: bytes) -> Record:
    if raw[:1] == b"{":  # the JSON records of earlier versions
        body = json.loads(raw)
        x = np.asarray(body["x"], np.float32)
        return Record(x, np.asarray(body["y"], np.float32).reshape(len(x), -1), str(body["t"]), "")
    magic, size = _HEAD.unpack_from(raw)
    if magic != MAGIC:
        raise ValueError("not a labelled record")
    header = json.loads(raw[_HEAD.size:_HEAD.size + size])
    x_shape, y_shape = tuple(header["x"]), tuple(header["y"])
    start = _HEAD.size + size
    x_bytes = int(np.prod(x_shape)) * 4
    x = np.frombuffer(raw, "<f4", int(np.prod(x_shape)), start).reshape(x_shape)
    y = np.frombuffer(raw, "<f4", int(np.prod(y_shape)), start + x_bytes).reshape(y_shape)
    meta = {k: str(v) for k, v in header.items() if k not in ("t", "r", "x", "y")}
    return Record(x.astype(np.float32), y.astype(np.float32), str(header["t"]), str(header.get("r", "")), meta)


class LabelledLog:
    def __init__(self, state: StateStore, max_requests: int = 2000, max_bytes: int = 64 * 1024 * 1024) -> None:
        self._state = state
        self._max = max_requests
        self._max_bytes = max_bytes

    def append(self, model: str, x: FloatArray, y: FloatArray, when: str, source: str = "", origin: str = "") -> None:
        self._state.apply([self.write(model, x, y, when, source, origin)])

    def write(self, model: str, x: FloatArray, y: FloatArray, when: str, source: str = "", origin: str = "") -> Write:
        """The append as a write, for a caller that applies it together with other writes. ``source`` is the request
        the rows came from, ``origin`` the label source that sent their ground truth ('' when feedback is open)."""
        record = encode_record(x, y, when, source, **({"o": origin} if origin else {}))
        keep = max(1, min(self._max, self._max_bytes // len(record)))
        return Write("append", _key(model), record, max_items=keep)

    def records(self, model: str, *, start: str | None = None, end: str | None = None) -> list[Record]:
        """Records whose date lies in [start, end] (ISO strings, inclusive), oldest first."""
        out = []
        for raw in self._state.items(_key(model)):
            record = decode_record(raw)
            day = record.when
            if (start and day[: len(start)] < start) or (end and day[: len(end)] > end):
                continue
            out.append(record)
        return out

    def read(self, model: str, *, start: str | None = None, end: str | None = None) -> TrainingData | None:
        """Rows whose date lies in [start, end], oldest first, each with its source request and the label source of
        its ground truth; None when none."""
        records = self.records(model, start=start, end=end)
        if not records:
            return None
        return TrainingData(x=np.concatenate([r.x for r in records]), y=np.concatenate([r.y for r in records]),
                            dates=np.asarray([r.when for r in records for _ in range(len(r.x))]),
                            sources=np.asarray([r.source or f"record-{i}" for i, r in enumerate(records)
                                                for _ in range(len(r.x))]),
                            origins=np.asarray([r.meta.get("o", "") for r in records for _ in range(len(r.x))]))
