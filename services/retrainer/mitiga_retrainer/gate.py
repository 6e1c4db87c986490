"""The champion/challenger gate: both are scored on the same recent labelled holdout, which neither trained on.

The challenger is promoted only if its error is lower than the champion's by at least ``margin`` (relative):
``challenger <= champion * (1 - margin)``, and strictly lower. A worse or equal challenger is never promoted.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Literal

from mitiga_core.metrics import regression_metrics

if TYPE_CHECKING:
    from mitiga_core.types import FloatArray

Metric = Literal["mae", "rmse", "mse"]


@dataclass(frozen=True)
class GateDecision:
    metric: str
    champion: float
    challenger: float
    margin: float
    holdout_rows: int
    promote: bool
    reason: str

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def decide(truth: FloatArray, champion: FloatArray, challenger: FloatArray, *, metric: Metric = "mae",
           margin: float = 0.0) -> GateDecision:
    if not 0 <= margin < 1:
        raise ValueError("margin must be in [0, 1)")
    old = regression_metrics(truth, champion)[metric]
    new = regression_metrics(truth, challenger)[metric]
    bar = old * (1 - margin)
    promote = new < old and new <= bar
    if promote:
        reason = f"challenger {metric} {new:.6g} beats champion {old:.6g} by at least {margin:.0%}"
    else:
        reason = f"challenger {metric} {new:.6g} does not beat champion {old:.6g} by {margin:.0%} (needs <= {bar:.6g})"
    return GateDecision(metric, old, new, margin, len(truth), promote, reason)
