"""The loop for the other kinds of model, over real Kafka and Redis, in processes: a classifier of the hourly CO
level (its feedback the true class, by name) and a regressor with two named inputs, both trained on spring and
summer 2004 and served the winter's hours. Each one's error grows past its own validation error, it is retrained
(its task's loss and gate), rolled out, and the inference process serves the new version, still a classifier with
its classes, still taking its two inputs."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from mitiga_core.bundle import save_bundle
from mitiga_core.events import Topic
from mitiga_core.store import FilesystemModelStore
from tests.devstack.conftest import decoded, make_stack, metric, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def winter(features: list[str]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The complete hours of late November and December 2004 (where both models have lost most): the features, the
    CO class and CO itself, and each hour's time."""
    from mitiga_research.datasets import AIR_QUALITY_TARGET, load_air_quality
    from mitiga_research.modelzoo.kinds import labelled

    frame = load_air_quality().loc["2004-11-20":"2004-12-31"]
    x, classes, times = labelled(frame, features)
    co = frame.loc[frame[features].notna().all(axis=1) & frame[AIR_QUALITY_TARGET].notna(), AIR_QUALITY_TARGET]
    return x, np.column_stack([classes[:, 0], co.to_numpy(np.float32)]), list(times)


@pytest.fixture(scope="module")
def loop(tmp_path_factory, reference_store):  # type: ignore[no-untyped-def]
    from mitiga_research.datasets import load_air_quality
    from mitiga_research.modelzoo.kinds import train_classifier, train_two_input

    tmp = tmp_path_factory.mktemp("kinds")
    stack = make_stack(tmp, reference_store, models=("airq", "air2"), console=True, detector_env={
        "MITIGA_EPOCHS": "10", "MITIGA_HOLDOUT_ROWS": "60", "MITIGA_MIN_ROWS": "40", "MITIGA_WINDOW_ROWS": "300",
        "MITIGA_MIN_PERFORMANCE_ROWS": "80"})
    spring = load_air_quality().loc["2004-03-01":"2004-08-31"]
    store = FilesystemModelStore(tmp / "models")
    for trained in (train_classifier(spring, name="airq", epochs=10), train_two_input(spring, name="air2", epochs=10)):
        saved = save_bundle(store, trained.manifest, trained.model, trained.reference, trained.training,
                            trained.validation)
        store.set_champion(saved.name, saved.version)
    stack.start()
    client = httpx.Client(base_url=stack.inference.url, timeout=60)
    features = client.get("/v2/models/airq").json()["parameters"]["features"]
    x, truth, times = winter(features)
    classes = client.get("/v2/models/airq").json()["parameters"]["classes"]
    sent = 0
    for lo in range(0, 600, 20):  # a refused challenger is retried on the rows that come after it
        rows, when = x[lo:lo + 20], times[lo]
        for model, inputs, gt in (
                ("airq", [{"name": "features", "shape": [20, 8], "datatype": "FP32",
                           "data": rows.reshape(-1).tolist()}], [classes[int(c)] for c in truth[lo:lo + 20, 0]]),
                ("air2", [{"name": "sensors", "shape": [20, 5], "datatype": "FP32",
                           "data": rows[:, :5].reshape(-1).tolist()},
                          {"name": "weather", "shape": [20, 3], "datatype": "FP32",
                           "data": rows[:, 5:].reshape(-1).tolist()}], truth[lo:lo + 20, 1].tolist())):
            answer = client.post(f"/v2/models/{model}/infer", json={
                "inputs": inputs, "parameters": {"data_time": when}})
            assert answer.status_code == 200, answer.text
            sent += 1
            # the truth comes after the prediction was seen, as it does in production (not before it: it would wait)
            wait_for(lambda n=sent: metric(stack.detector.url, "mitiga_detector_events_total", type="InferenceEvent")
                     >= n, 60, "the detector to see the request", every_s=0.05)
            answered = client.post(f"/v2/models/{model}/feedback", json={"request_id": answer.json()["id"],
                                                                          "ground_truth": gt})
            assert answered.status_code == 202, answered.text
    yield stack, client, x
    client.close()
    stack.stop()


@pytest.mark.parametrize("model", ["airq", "air2"])
def test_the_winter_retrains_the_model_and_the_new_version_is_served(loop, model: str) -> None:  # type: ignore[no-untyped-def]
    stack, client, x = loop
    def explain() -> str:
        windows = httpx.get(f"{stack.detector.url}/v1/models/{model}/drift/history", timeout=30).json()["windows"]
        return "\n".join(f"{w['window_end']} {w['level']} {w['decided_by']} {w.get('trigger')} " + str(
            {k: round(w[k], 3) for k in ("error_rate_ratio", "log_loss_ratio", "mae_ratio") if k in w})
            for w in windows)

    new = wait_for(lambda: client.get(f"/v2/models/{model}").json()["parameters"]["version"] != "1" and
                   client.get(f"/v2/models/{model}").json(), 420, f"{model}'s retrained version to be served",
                   explain=explain)
    rollouts = [e for e in decoded(stack.kafka.bootstrap, Topic.ROLLOUT) if e.model_name == model]
    assert new["parameters"]["version"] in [r.version for r in rollouts]  # (a later retrain may have followed)
    requests = [e for e in decoded(stack.kafka.bootstrap, Topic.RETRAIN) if e.model_name == model]
    assert requests and requests[0].trigger == "informed"
    if model == "airq":
        assert new["parameters"]["task"] == "multiclass"
        assert new["parameters"]["classes"] == ["low", "moderate", "high"]
        answer = client.post("/v2/models/airq/infer", json={"inputs": [
            {"name": "features", "shape": [2, 8], "datatype": "FP32", "data": x[:2].reshape(-1).tolist()}]}).json()
        labels = {o["name"]: o for o in answer["outputs"]}["label"]["data"]
        assert set(labels) <= {"low", "moderate", "high"} and answer["model_version"] != "1"
    else:
        assert {i["name"] for i in new["inputs"]} == {"sensors", "weather"}
        answer = client.post("/v2/models/air2/infer", json={"inputs": [
            {"name": "sensors", "shape": [2, 5], "datatype": "FP32", "data": x[:2, :5].reshape(-1).tolist()},
            {"name": "weather", "shape": [2, 3], "datatype": "FP32", "data": x[:2, 5:].reshape(-1).tolist()}]})
        assert answer.status_code == 200 and answer.json()["model_version"] != "1"


def test_the_console_shows_the_classifiers_confusion_matrix_and_accuracy(loop) -> None:  # type: ignore[no-untyped-def]
    """The classifier's page: a confusion matrix of its labelled window by class name, and its realised and
    estimated accuracy over time (from Prometheus)."""
    import json
    import re

    stack, _, _ = loop

    def page() -> str | None:
        text = httpx.get(f"{stack.console.url}/models/airq", timeout=30).text
        return text if 'id="confusion"' in text and "estimated accuracy" in text else None

    text = wait_for(page, 120, "the classifier's health on the console")
    table = text[text.index('<table id="confusion">'):]
    table = table[:table.index("</table>")]
    assert [h for h in re.findall(r"<th>(.*?)</th>", table)] == ["true \\ predicted", "low", "moderate", "high"]
    counts = [int(n) for n in re.findall(r"<td>(\d+)</td>", table)]
    assert len(counts) == 9 and sum(counts) > 0
    data = json.loads(re.search(r'<script type="application/json" id="errors-data">(.*?)</script>', text).group(1))
    assert "accuracy" in json.dumps(data)


def test_the_classifier_panels_of_the_dashboard_have_data(loop) -> None:  # type: ignore[no-untyped-def]
    from mitiga_devstack.dashboard import CLASSIFIER_SIGNALS, queries

    stack = loop[0]
    mine = [expr for expr in queries() if any(f'"{signal}"' in expr for signal in CLASSIFIER_SIGNALS)
            or "accuracy" in expr or "recall_" in expr or '"error_rate"' in expr]
    assert len(mine) >= 5

    def empty() -> list[str]:
        found = []
        for expr in mine:
            answer = httpx.get(f"{stack.prometheus.url}/api/v1/query", params={"query": expr}, timeout=10).json()
            assert answer["status"] == "success", (expr, answer)
            if not answer["data"]["result"]:
                found.append(expr)
        return found

    wait_for(lambda: not empty(), 90, "every classifier panel to have data", explain=lambda: str(empty()))
