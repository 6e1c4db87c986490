"""Alibi Detect's multivariate MMD and LSDD tests and its optional online detectors (TensorFlow backend)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from mitiga_core.types import FloatArray


def mmd_test(reference: FloatArray, window: FloatArray, p_val: float, permutations: int = 100) -> dict[str, float]:
    """MMD two-sample test on whole rows; returns ``p_value``, ``distance`` and ``is_drift``."""
    from alibi_detect.cd import MMDDrift

    detector = MMDDrift(np.asarray(reference, np.float32), backend="tensorflow", p_val=p_val,
                        n_permutations=permutations)
    data = detector.predict(np.asarray(window, np.float32))["data"]
    return {"p_value": float(data["p_val"]), "distance": float(data["distance"]), "is_drift": float(data["is_drift"])}


def lsdd_test(reference: FloatArray, window: FloatArray, p_val: float, permutations: int = 100) -> dict[str, float]:
    """Least-squares density difference test on whole rows; returns ``p_value``, ``distance`` and ``is_drift``."""
    from alibi_detect.cd import LSDDDrift

    detector = LSDDDrift(np.asarray(reference, np.float32), backend="tensorflow", p_val=p_val,
                         n_permutations=permutations)
    data = detector.predict(np.asarray(window, np.float32))["data"]
    return {"p_value": float(data["p_val"]), "distance": float(data["distance"]), "is_drift": float(data["is_drift"])}


class OnlineDetector:
    """Alibi's ``CVMDriftOnline`` or ``MMDDriftOnline``, calibrated for an expected run time (ERT) between false
    alarms, fed one row at a time."""

    def __init__(self, kind: str, reference: FloatArray, *, ert: float, window: int, bootstraps: int = 2000) -> None:
        from alibi_detect.cd import CVMDriftOnline, MMDDriftOnline

        ref = np.asarray(reference, np.float32)
        self._detector: Any
        if kind == "cvm":
            self._detector = CVMDriftOnline(ref, ert=ert, window_sizes=[window], n_bootstraps=bootstraps,
                                            verbose=False)
        else:
            self._detector = MMDDriftOnline(ref, ert=ert, window_size=window, backend="tensorflow",
                                            n_bootstraps=bootstraps, verbose=False)
        self.alarms = 0

    def update(self, rows: FloatArray) -> bool:
        """Feed rows; True if any of them raised an alarm (the detector then restarts its test)."""
        alarmed = False
        for row in np.asarray(rows, np.float32):
            if self._detector.predict(row)["data"]["is_drift"]:
                alarmed = True
                self.alarms += 1
                self._detector.reset_state()
        return alarmed
