"""Regression error metrics in original units, shared by training, the detector and the gate."""

from __future__ import annotations

import numpy as np

from mitiga_core.types import FloatArray  # noqa: TC001


def regression_metrics(y_true: FloatArray, y_pred: FloatArray) -> dict[str, float]:
    """MAE, MSE, RMSE and R² (R² is NaN when the truth is constant)."""
    t = np.asarray(y_true, np.float64).reshape(-1)
    p = np.asarray(y_pred, np.float64).reshape(-1)
    if t.shape != p.shape or t.size == 0:
        raise ValueError(f"need equal, non-empty arrays; got {t.shape} and {p.shape}")
    err = p - t
    mse = float(np.mean(err**2))
    ss_tot = float(np.sum((t - t.mean()) ** 2))
    r2 = 1.0 - float(np.sum(err**2)) / ss_tot if ss_tot > 0 else float("nan")
    return {"mae": float(np.mean(np.abs(err))), "mse": mse, "rmse": mse**0.5, "r2": r2}
