"""Attack: a labeller whose feedback token leaked sends forged ground truth to choose the promoted model.

Each label source has its own token (``MITIGA_FEEDBACK_TOKENS``); the feedback event, the labelled row and the gate's
decision record which source sent each label. A source that gave more than ``max_source_share`` (50%) of the
holdout's production rows, beside other sources, must not decide alone: the challenger must also win without its
rows.

The bound under the cap: the gate compares mean errors over the holdout, so rows from one source, a share ``s`` of
it, move either model's holdout error by at most ``s`` times the largest error a row can show. A forger who labels
each of its rows exactly as the challenger predicts makes the challenger win only where its error on the honest rows
exceeds the champion's by less than ``s / (1 - s)`` times the champion's error on the forged rows: at most once
that error under the cap (``s`` at most 0.5). Over the cap, the forged rows decide nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest

from mitiga_core.bundle import TrainingData
from mitiga_core.events import Topic, decode_as, encode
from mitiga_core.pb.mitiga.v1 import events_pb2 as pb
from mitiga_retrainer.gate import decide
from mitiga_retrainer.holdout import concentration

if TYPE_CHECKING:
    from pathlib import Path

ROWS = 100


def holdout_with(forged_share: float) -> tuple[TrainingData, np.ndarray, np.ndarray]:
    """A holdout of honest rows from "crm" and forged ones from "leaked", with the champion's and the challenger's
    predictions: the challenger is worse on the honest rows (error 1.0 against 0.2), and the forger labels its rows
    exactly as the challenger predicts (where the champion is 3.0 off)."""
    forged = int(ROWS * forged_share)
    truth = np.zeros((ROWS, 1), np.float32)
    champion, challenger = truth + 0.2, truth + 1.0
    truth[:forged] = challenger[:forged]  # the forged labels
    champion[:forged] = challenger[:forged] + 3.0
    origins = np.asarray(["leaked"] * forged + ["crm"] * (ROWS - forged))
    data = TrainingData(x=np.zeros((ROWS, 1), np.float32), y=truth, dates=np.asarray([f"t{i:03d}" for i in range(ROWS)]),
                        sources=np.asarray([f"request-{i}" for i in range(ROWS)]), origins=origins)
    return data, champion, challenger


@pytest.mark.parametrize("share", [0.1, 0.2, 0.3, 0.4, 0.5])
def test_under_the_cap_forged_labels_move_the_gate_no_further_than_the_bound(share: float) -> None:
    data, champion, challenger = holdout_with(share)
    decision = decide(data.y, champion, challenger, concentration=concentration(data), max_share=0.5,
                      origins=data.origins, max_source_share=0.5, metric="mae")
    assert decision.holdout_sources == {"leaked": int(ROWS * share), "crm": ROWS - int(ROWS * share)}
    # the challenger's error gap on the honest rows (0.8) against the bound s / (1 - s) x 3.0
    wins = share / (1 - share) * 3.0 > 0.8
    assert decision.promote is wins
    assert abs(decision.challenger - (1 - share) * 1.0) < 1e-6  # honest rows only: the forged ones cost it nothing


@pytest.mark.parametrize("share", [0.6, 0.9])
def test_over_the_cap_one_source_cannot_choose_the_model(share: float) -> None:
    data, champion, challenger = holdout_with(share)
    decision = decide(data.y, champion, challenger, concentration=concentration(data), max_share=0.5,
                      origins=data.origins, max_source_share=0.5, metric="mae")
    assert not decision.promote and decision.holdout_top_source_share == pytest.approx(share)
    assert "wins only with the ground truth of label source 'leaked'" in decision.reason, decision.reason


def test_a_dominant_honest_source_still_lets_a_better_challenger_through() -> None:
    """The check needs the other sources to agree, not to outweigh: a challenger better on every row passes."""
    data, champion, _ = holdout_with(0.3)
    better = data.y.copy()  # right on every row, honest and forged
    decision = decide(data.y, champion, better, concentration=concentration(data), max_share=0.5,
                      origins=data.origins, max_source_share=0.5, metric="mae")
    assert decision.promote and decision.holdout_top_source_share == pytest.approx(0.7)


def test_one_label_source_alone_is_not_capped() -> None:
    """The model's only labeller (one token) gives all its ground truth: that is no attack."""
    data, champion, challenger = holdout_with(0.0)
    decision = decide(data.y, champion, challenger, concentration=concentration(data), max_share=0.5,
                      origins=data.origins, max_source_share=0.5, metric="mae")
    assert decision.holdout_sources == {"crm": ROWS} and decision.holdout_top_source_share == 0.0
    assert "label source" not in decision.reason


def test_the_detector_keeps_the_label_source_of_each_row(tmp_path: Path) -> None:
    from mitiga_core.labelled import LabelledLog
    from tests.detector.conftest import Harness, feedback, inference, write_bundle

    h = Harness(tmp_path)
    write_bundle(h.store)
    x = np.ones((2, 3), np.float32)
    h.core.handle(inference(x, x.sum(axis=1, keepdims=True), request_id="r1"))
    h.core.handle(inference(x, x.sum(axis=1, keepdims=True), request_id="r2"))
    for rid, source in (("r1", "crm"), ("r2", "annotators")):
        message = decode_as(feedback([(rid, [3.0, 3.0])]), pb.FeedbackEvent)
        message.source = source  # as the inference service names it from the token
        h.core.handle(encode(message, source="inference", key="tab"))
    h.core.checkpoint()
    data = LabelledLog(h.state).read("tab")
    assert data is not None and data.origins is not None
    assert list(zip(data.sources, data.origins, strict=True)) == [("r1", "crm")] * 2 + [("r2", "annotators")] * 2
    h.publisher.stop()


@pytest.mark.slow  # serves the reference models
def test_each_feedback_token_names_its_source(reference_store: Path, tmp_path: Path) -> None:
    import shutil

    from tests.inference.conftest import start_service, window_request

    shutil.copytree(reference_store, tmp_path / "store")
    svc = start_service(tmp_path / "store", feedback_tokens={"crm": "crm-token", "annotators": "annotators-token"})
    try:
        with svc.client() as client:
            for i in range(2):
                assert client.post("/v2/models/lstm/infer", json=window_request(1, id=f"r{i}")).status_code == 200
            item = {"request_id": "r0", "ground_truth": [21.0]}
            assert client.post("/v2/models/lstm/feedback", json=item).status_code == 401
            assert client.post("/v2/models/lstm/feedback", json=item,
                               headers={"Authorization": "Bearer s3cret"}).status_code == 403
            for rid, token in (("r0", "crm-token"), ("r1", "annotators-token")):
                sent = client.post("/v2/models/lstm/feedback", json={**item, "request_id": rid},
                                   headers={"Authorization": f"Bearer {token}"})
                assert sent.status_code == 202, sent.text
    finally:
        svc.running.stop()
    events = [decode_as(e, pb.FeedbackEvent) for e in svc.bus.messages(Topic.FEEDBACK)]
    assert [(e.items[0].request_id, e.source) for e in events] == [("r0", "crm"), ("r1", "annotators")]


def test_parked_feedback_keeps_its_label_source_across_a_restart() -> None:
    from mitiga_detector.parking import FeedbackParking

    parking = FeedbackParking(wait_s=300, max_items=10)
    parking.park("tab", "r1", [1.0], "crm")
    saved = parking.snapshot("tab")
    restarted = FeedbackParking(wait_s=300, max_items=10)
    restarted.restore("tab", [*saved, ["tab", "r0", [2.0], saved[0][3]]])  # r0: a checkpoint from before sources
    assert restarted.claim("tab", "r1") == ([1.0], "crm")
    assert restarted.claim("tab", "r0") == ([2.0], "")


def test_label_sources_from_a_mounted_secret(tmp_path: Path) -> None:
    """The chart mounts `feedbackToken.sourcesSecret` as a directory: one file per source (a Secret's volume also
    holds hidden `..data` links, which are no source)."""
    from mitiga_inference.settings import InferenceSettings

    (tmp_path / "crm").write_text("crm-token\n")
    (tmp_path / "annotators").write_text("annotators-token")
    (tmp_path / "..data").mkdir()
    settings = InferenceSettings(model_store_path=tmp_path, feedback_token="labels", feedback_tokens_dir=tmp_path)
    assert {k: v.get_secret_value() for k, v in settings.feedback_sources().items()} == {
        "default": "labels", "annotators": "annotators-token", "crm": "crm-token"}
