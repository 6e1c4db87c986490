"""The kinds of model mitiga serves, one object each (:mod:`mitiga_core.tasks.base` says what a task answers)."""

from __future__ import annotations

from typing import Literal

from mitiga_core.tasks.base import Answer, Task, TruthError
from mitiga_core.tasks.classification import Binary, Classification, Multiclass
from mitiga_core.tasks.forecast import Forecast
from mitiga_core.tasks.regression import Regression

TaskName = Literal["forecast", "regression", "binary", "multiclass"]
TASKS: dict[str, Task] = {t.name: t for t in (Forecast(), Regression(), Binary(), Multiclass())}


def task_of(name: str) -> Task:
    """The task object of a task's name."""
    return TASKS[name]


__all__ = ["TASKS", "Answer", "Binary", "Classification", "Forecast", "Multiclass", "Regression", "Task", "TaskName",
           "TruthError", "task_of"]
