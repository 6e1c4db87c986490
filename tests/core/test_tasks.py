"""The task contract: each kind of model answers every question a service asks, and no service branches on the
task itself. Classification metrics are checked against scikit-learn's own."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from mitiga_core.bundle import ModelManifest, Scaler
from mitiga_core.tasks import TASKS, Classification, TruthError, task_of
from mitiga_core.tasks.holdout import stratified, time_blocks

SERVICES = Path(__file__).resolve().parents[2] / "services"
BRANCH = re.compile(r"""\btask\b\s*(==|!=|\bin\b|\bnot in\b)|(==|!=)\s*["'](forecast|regression|binary|multiclass)["']""")


def test_no_service_branches_on_the_task() -> None:
    """The difference between tasks lives in mitiga_core/tasks alone: a service asks the task object."""
    found = []
    for path in SERVICES.rglob("*.py"):
        if "mitiga_core/tasks" in path.as_posix():
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#")[0]
            if BRANCH.search(code) and "TASKS" not in code:
                found.append(f"{path.relative_to(SERVICES)}:{number}: {line.strip()}")
    assert not found, "branches on the task outside mitiga_core/tasks:\n" + "\n".join(found)


def test_the_branch_check_finds_a_branch() -> None:
    assert BRANCH.search('if manifest.task == "forecast":') and BRANCH.search("x if task != 'binary' else y")
    assert not BRANCH.search("manifest.kind.drift_columns(inputs)")


def classifier(k: int = 3, **extra: object) -> ModelManifest:
    task = "binary" if k == 2 else "multiclass"
    return ModelManifest(name="c", task=task, features=["a", "b"], classes=[f"c{i}" for i in range(k)], **extra)


def test_every_task_has_an_object_and_manifests_written_before_tasks_load() -> None:
    assert set(TASKS) == {"forecast", "regression", "binary", "multiclass"}
    old = ModelManifest.model_validate_json('{"name": "m", "task": "forecast", "features": ["v"], "window": 5}')
    assert old.kind is task_of("forecast") and old.input_width == 5 and old.classes == []
    assert old.model_inputs(np.zeros((2, 5), np.float32)).shape == (2, 5, 1)


@pytest.mark.parametrize(("fields", "message"), [
    ({"task": "binary", "classes": ["a", "b", "c"]}, "two classes"),
    ({"task": "multiclass", "classes": ["a"]}, "at least two"),
    ({"task": "multiclass", "classes": ["a", "a"]}, "unique"),
    ({"task": "binary", "classes": ["n", "y"], "output_scaler": Scaler(kind="minmax", offset=[0], scale=[1])},
     "probabilities"),
    ({"task": "regression", "classes": ["a", "b"]}, "no classes"),
    ({"task": "multiclass", "classes": ["a", "b"], "window": 3}, "no window"),
])
def test_a_manifest_that_does_not_fit_its_task_is_refused(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ModelManifest(name="m", features=["a"], **fields)  # type: ignore[arg-type]


def test_classification_metrics_equal_scikit_learns() -> None:
    from sklearn import metrics

    rng = np.random.default_rng(0)
    probs = rng.dirichlet([1, 1, 1], size=200)
    truth = rng.integers(0, 3, size=200).astype(np.float32).reshape(-1, 1)
    got = task_of("multiclass").scores(truth, probs)
    labels = truth.reshape(-1).astype(int)
    assert got["accuracy"] == pytest.approx(metrics.accuracy_score(labels, probs.argmax(1)))
    assert got["f1"] == pytest.approx(metrics.f1_score(labels, probs.argmax(1), average="macro"))
    assert got["log_loss"] == pytest.approx(metrics.log_loss(labels, probs), rel=1e-6)
    assert got["recall_2"] == pytest.approx(metrics.recall_score(labels, probs.argmax(1), average=None)[2])
    binary = rng.uniform(size=(200, 1))
    manifest = classifier(2)
    stored = manifest.output_values(binary)
    assert stored.shape == (200, 2) and np.allclose(stored.sum(axis=1), 1)
    two = task_of("binary").scores(truth % 2, stored)
    assert two["roc_auc"] == pytest.approx(metrics.roc_auc_score((labels % 2), binary.reshape(-1)))
    assert two["brier"] == pytest.approx(2 * metrics.brier_score_loss(labels % 2, binary.reshape(-1)), rel=1e-5)


def test_a_classifier_answers_probabilities_and_the_label_and_takes_a_class_as_truth() -> None:
    manifest = classifier(3)
    probs = np.asarray([[0.1, 0.7, 0.2], [0.5, 0.2, 0.3]], np.float32)
    answers = {name: (datatype, data) for name, datatype, data in manifest.kind.answers(manifest, probs)}
    assert answers["probabilities"][0] == "FP32" and answers["probabilities"][1].shape == (2, 3)
    assert answers["label"][0] == "BYTES" and list(answers["label"][1]) == [b"c1", b"c0"]
    assert manifest.kind.truth_width(manifest) == 1
    assert manifest.kind.truth(manifest, ["c2", 0, 1.0]) == [2.0, 0.0, 1.0]
    for bad, message in (("c9", "unknown class 'c9'; the classes are"), (3, "neither a class name nor"),
                         (0.5, "neither"), (True, "neither")):
        with pytest.raises(TruthError, match=message):
            manifest.kind.truth(manifest, [bad])
    regression = ModelManifest(name="r", task="regression", features=["a"])
    with pytest.raises(TruthError, match="must be numbers"):
        regression.kind.truth(regression, ["1"])
    loss = manifest.kind.row_loss(manifest, np.asarray([[1.0], [0.0]]), probs)
    assert loss == pytest.approx([-np.log(0.7), -np.log(0.5)], rel=1e-5)


def test_each_task_chooses_its_drift_columns_and_its_gate_metric() -> None:
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert task_of("forecast").drift_columns(x).tolist() == [[3.0], [7.0], [11.0]]
    assert task_of("regression").drift_columns(x) is x and task_of("binary").drift_columns(x) is x
    assert next(iter(task_of("regression").gate_metrics)) == "mae"
    assert next(iter(task_of("multiclass").gate_metrics)) == "log_loss"
    assert task_of("binary").better("accuracy", 0.9, 0.8) and task_of("binary").better("log_loss", 0.3, 0.4)
    assert isinstance(task_of("binary"), Classification) and not task_of("forecast").joint_drift_tests


def test_a_classifiers_holdout_keeps_every_class_in_its_share_and_the_newest_row() -> None:
    rng = np.random.default_rng(1)
    labels = (rng.uniform(size=400) < 0.1).astype(int)  # a rare class: 10%
    mask = stratified(labels, 40, spread=3.0)
    held = labels[mask]
    recent = labels[-120:]
    assert mask.sum() == 40 and mask[-120:].sum() == 40  # from the recent period only
    assert abs(held.mean() - recent.mean()) <= 1 / 40 + 1e-9  # the rare class in its share
    assert held.sum() >= 1
    newest = {int(c): int(np.flatnonzero(labels == c)[-1]) for c in np.unique(recent)}
    assert all(mask[i] for i in newest.values())  # each class's newest row is scored
    time_ordered = time_blocks(400, 40, spread=3.0, blocks=4)
    assert time_ordered[-1] and time_ordered.sum() == 40


def test_class_weights_balance_a_rare_class() -> None:
    y = np.asarray([0] * 90 + [1] * 10, np.float32)
    weights = task_of("binary").class_weights(y)
    assert weights is not None and weights.mean() == pytest.approx(1.0)
    assert weights[y == 1].sum() == pytest.approx(weights[y == 0].sum())
    assert task_of("regression").class_weights(y) is None
    assert task_of("binary").class_weights(np.asarray([0] * 55 + [1] * 45, np.float32)) is None  # about even
