"""The retrain request is the one payload a retraining Job receives: the detector's RetrainRequest as JSON, read
back into the retrainer's settings; a malformed one, or one that sets what a request may not, exits 2 naming it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from typer.testing import CliRunner

from mitiga_core import retrain_request
from mitiga_core.errors import InvalidInput
from mitiga_core.pb.mitiga.v1 import events_pb2 as pb
from mitiga_retrainer.__main__ import app
from mitiga_retrainer.settings import RetrainerSettings

if TYPE_CHECKING:
    from pathlib import Path


def request(**options: str) -> pb.RetrainRequest:
    return pb.RetrainRequest(request_id="retrain-lstm-abc", model_name="lstm", base_version="3", episode_id="abc",
                             trigger="informed", strategy="gradual_forgetting", mode="reset", options=options)


def test_a_request_becomes_the_retrainers_settings() -> None:
    sent = request(epochs="7", data_start="2024-01-01")
    received = retrain_request.parse(retrain_request.to_argument(sent))
    assert received == sent
    settings = RetrainerSettings(**retrain_request.settings_fields(received))
    assert (settings.model, settings.base_version, settings.strategy, settings.mode, settings.epochs) == (
        "lstm", "3", "gradual_forgetting", "reset", 7)
    assert (settings.request_id, settings.episode_id, settings.trigger, settings.data_start) == (
        "retrain-lstm-abc", "abc", "informed", "2024-01-01")


@pytest.mark.parametrize(("text", "message"), [
    ("{not json", "request: not a RetrainRequest"),
    ('{"modelName": "lstm", "colour": "red"}', "request: not a RetrainRequest"),
    ('{"requestId": "r"}', "request.model_name: required"),
    (retrain_request.to_argument(request(redis_url="redis://elsewhere")), "request.options: redis_url cannot be set"),
])
def test_a_bad_request_is_refused_naming_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        retrain_request.parse(text)


def test_the_retrainer_exits_2_on_a_bad_request_and_runs_a_good_one(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MITIGA_MODEL_STORE_PATH", str(tmp_path))
    monkeypatch.setenv("MITIGA_BUS", "memory")
    monkeypatch.setenv("MITIGA_STATE", "memory")
    runner = CliRunner()
    bad = runner.invoke(app, ["--request", retrain_request.to_argument(request(window_rows="5"))])
    assert bad.exit_code == 2 and "request.options: window_rows cannot be set" in bad.output
    # a good request reaches the run: here the model has no labelled rows, a permanent failure naming the model
    good = runner.invoke(app, [], env={"MITIGA_RETRAIN_REQUEST": retrain_request.to_argument(request())})
    assert good.exit_code == 2 and "lstm" in good.output, good.output
