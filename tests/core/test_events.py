from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from mitiga_core.errors import EventDecodeError
from mitiga_core.events import Envelope, decode, decode_as, encode
from mitiga_core.pb.mitiga.v1 import events_pb2 as pb

ROOT = Path(__file__).resolve().parents[2]


def test_roundtrip_with_cloudevents_headers() -> None:
    event = pb.InferenceEvent(event_id="e1", request_id="r1", model_name="m", model_version="2",
                              inputs=pb.Matrix(shape=[1, 2], data=[1.0, 2.0]))
    env = encode(event, source="test", key="m")
    assert env.key == "m"
    assert env.headers["ce_id"] == "e1" and env.headers["ce_type"] == "io.mitiga.inference.v1"
    assert env.headers["ce_source"] == "test" and env.headers["ce_specversion"] == "1.0"
    assert env.headers["content-type"] == "application/protobuf"
    assert decode_as(env, pb.InferenceEvent) == event


@pytest.mark.parametrize(("change", "needle"), [
    ({"ce_type": "io.other"}, "unknown ce_type"),
    ({"ce_specversion": "0.3"}, "ce_specversion"),
    ({"content-type": "application/json"}, "content-type"),
    ({"ce_id": ""}, "ce_id"),
])
def test_bad_headers_are_refused(change: dict[str, str], needle: str) -> None:
    env = encode(pb.FeedbackEvent(event_id="x"), source="t")
    bad = dataclasses.replace(env, headers={**env.headers, **change})
    with pytest.raises(EventDecodeError, match=needle):
        decode(bad)


def test_garbage_payload_and_wrong_class() -> None:
    env = encode(pb.FeedbackEvent(event_id="x"), source="t")
    with pytest.raises(EventDecodeError, match="not a valid"):
        decode(Envelope(payload=b"\xff\xff\xff", headers=env.headers))
    with pytest.raises(EventDecodeError, match="expected ModelRollout"):
        decode_as(env, pb.ModelRollout)


def test_generated_protobuf_code_is_current(tmp_path: Path) -> None:
    subprocess.run([sys.executable, str(ROOT / "protos" / "generate.py"), str(tmp_path)], check=True)
    generated = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.py*") if "__pycache__" not in p.parts)
    assert {p.parts[:3] for p in generated} == {("services", "core", "mitiga_core"),
                                                ("services", "inference", "mitiga_inference")}
    for rel in generated:
        assert (ROOT / rel).read_text() == (tmp_path / rel).read_text(), f"{rel} is stale: run make protos"
