"""The champion/challenger gate: both are scored on the same recent labelled holdout, which neither trained on.

The challenger is promoted only if its error is lower than the champion's by at least ``margin`` (relative):
``challenger <= champion * (1 - margin)``, and strictly lower. A worse or equal challenger is never promoted, nor
one whose holdout a single request, data time or (among several) label source dominates (``holdout.concentration``):
whoever sent those rows would choose the model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from mitiga_core.tasks import task_of

if TYPE_CHECKING:
    from mitiga_core.tasks import Task
    from mitiga_core.types import AnyArray, FloatArray
    from mitiga_retrainer.holdout import Concentration

Metric = Literal["mae", "rmse", "mse", "log_loss", "f1", "accuracy", "brier"]
"""A gate metric; the model's task says which apply (``Task.gate_metrics``) and which way is better."""


@dataclass(frozen=True)
class GateDecision:
    metric: str
    champion: float
    challenger: float
    margin: float
    holdout_rows: int
    promote: bool
    reason: str
    holdout_requests: int = 0
    holdout_top_request_share: float = 0.0
    holdout_top_time_share: float = 0.0
    holdout_sources: dict[str, int] | None = None
    """The holdout's production rows per label source (who sent their ground truth)."""
    holdout_top_source_share: float = 0.0

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _compare(task: Task, metric: str, margin: float, truth: FloatArray, champion: FloatArray,
             challenger: FloatArray) -> tuple[float, float, bool, str]:
    """(champion's score, challenger's, whether the challenger wins by ``margin``, the bar it had to pass)."""
    old, new = task.scores(truth, champion)[metric], task.scores(truth, challenger)[metric]
    if task.gate_metrics[metric] == "higher":
        bar = old + (1 - old) * margin
        return old, new, task.better(metric, new, old) and new >= bar, f">= {bar:.6g}"
    bar = old * (1 - margin)
    return old, new, task.better(metric, new, old) and new <= bar, f"<= {bar:.6g}"


def decide(truth: FloatArray, champion: FloatArray, challenger: FloatArray, *, metric: Metric | None = None,
           margin: float = 0.0, concentration: Concentration | None = None, max_share: float = 1.0,
           origins: AnyArray | None = None, max_source_share: float = 1.0, task: Task | None = None) -> GateDecision:
    """``metric`` defaults to the task's first gate metric; a metric where higher is better (accuracy, F1) needs the
    challenger above the champion by ``margin`` of what the champion lacks: ``new >= old + (1 - old) * margin``.
    ``origins`` (the label source of each holdout row): a source that gave more than ``max_source_share`` of the
    production rows, beside other sources, must not decide alone: the challenger must also win without its rows."""
    if not 0 <= margin < 1:
        raise ValueError("margin must be in [0, 1)")
    task = task or task_of("regression")
    chosen: str = metric or next(iter(task.gate_metrics))
    if chosen not in task.gate_metrics:
        raise ValueError(f"gate metric {chosen!r} does not apply to a {task.name} model; use one of "
                         f"{sorted(task.gate_metrics)}")
    old, new, promote, needs = _compare(task, chosen, margin, truth, champion, challenger)
    if promote:
        reason = f"challenger {chosen} {new:.6g} beats champion {old:.6g} by at least {margin:.0%}"
    else:
        reason = f"challenger {chosen} {new:.6g} does not beat champion {old:.6g} by {margin:.0%} (needs {needs})"
    if concentration is None:
        return GateDecision(chosen, old, new, margin, len(truth), promote, reason)
    if concentration.worst() > max_share:
        promote = False
        reason = (f"holdout refused: {concentration.worst():.0%} of its rows come from one request or one data "
                  f"time (at most {max_share:.0%}); {reason}")
    source, share = concentration.top_source
    if promote and origins is not None and share > max_source_share:
        rest = np.asarray(origins) != source
        o, n, holds, _ = _compare(task, chosen, margin, truth[rest], champion[rest], challenger[rest])
        if not holds:
            promote = False
            reason = (f"holdout refused: the challenger wins only with the ground truth of label source {source!r} "
                      f"({share:.0%} of the labelled rows, over {max_source_share:.0%}); without it, challenger "
                      f"{chosen} {n:.6g} against champion {o:.6g}; {reason}")
    return GateDecision(chosen, old, new, margin, len(truth), promote, reason, concentration.requests,
                        concentration.top_request_share, concentration.top_time_share, concentration.sources, share)
