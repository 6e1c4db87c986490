"""The champion/challenger gate: both are scored on the same recent labelled holdout, which neither trained on.

The challenger is promoted only if its error is lower than the champion's by at least ``margin`` (relative):
``challenger <= champion * (1 - margin)``, and strictly lower. A worse or equal challenger is never promoted, nor
one whose holdout a single request or data time dominates (``holdout.concentration``): whoever sent those rows would
choose the model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Literal

from mitiga_core.metrics import regression_metrics

if TYPE_CHECKING:
    from mitiga_core.types import FloatArray
    from mitiga_retrainer.holdout import Concentration

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
    holdout_requests: int = 0
    holdout_top_request_share: float = 0.0
    holdout_top_time_share: float = 0.0

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def decide(truth: FloatArray, champion: FloatArray, challenger: FloatArray, *, metric: Metric = "mae",
           margin: float = 0.0, concentration: Concentration | None = None, max_share: float = 1.0) -> GateDecision:
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
    if concentration is None:
        return GateDecision(metric, old, new, margin, len(truth), promote, reason)
    if concentration.worst() > max_share:
        promote = False
        reason = (f"holdout refused: {concentration.worst():.0%} of its rows come from one request or one data "
                  f"time (at most {max_share:.0%}); {reason}")
    return GateDecision(metric, old, new, margin, len(truth), promote, reason, concentration.requests,
                        concentration.top_request_share, concentration.top_time_share)
