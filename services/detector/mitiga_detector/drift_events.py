"""The drift event a window's verdict publishes: the level, every type and signal that fired, the signals that
decided it with their values and thresholds, the model's units, and the five features with the smallest p-values."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import numpy as np

from mitiga_core.events import new_id
from mitiga_core.pb.mitiga.v1 import events_pb2 as pb

if TYPE_CHECKING:
    from collections.abc import Sequence

    from mitiga_detector import signals
    from mitiga_detector.alerting import Reading
    from mitiga_detector.levels import Severity, Verdict
    from mitiga_detector.monitor import ModelMonitor
    from mitiga_detector.windows import Window

TYPE_CODES: dict[str, int] = {
    "data": pb.DRIFT_TYPE_DATA, "prediction": pb.DRIFT_TYPE_PREDICTION, "concept": pb.DRIFT_TYPE_CONCEPT,
    "estimated": pb.DRIFT_TYPE_ESTIMATED,
}


def drift_event(monitor: ModelMonitor, window: Window, level: Severity, result: Verdict, values: dict[str, float],
                found: signals.WindowSignals, episode_id: str | None,
                deciding: Sequence[Reading] = ()) -> pb.DriftEvent:
    uni, dist = found.univariate, found.distances
    order = np.argsort(uni.p_values)[:5]
    top = [pb.FeatureDrift(feature=monitor.feature_names[j], p_value=float(uni.p_values[j]),
                           statistic=float(uni.statistics[j]), wasserstein=float(dist["wasserstein"][j]),
                           jensen_shannon=float(dist["jensen_shannon"][j]), psi=float(dist["psi"][j]),
                           drifted=bool(uni.drifted[j])) for j in order]
    event = pb.DriftEvent(event_id=new_id(), episode_id=episode_id or "", model_name=monitor.manifest.name,
                          model_version=monitor.manifest.version, window_size=len(window),
                          share_drifted=values["share_drifted"], top_features=top,
                          metrics={k: float(v) for k, v in values.items()}, signals=list(result.signals),
                          decided_by=result.decided_by, units=monitor.manifest.units,
                          deciding=[pb.SignalReading(signal=r.signal, value=r.value, threshold=r.threshold,
                                                     direction=r.direction) for r in deciding])
    event.level = int(level)  # type: ignore[assignment]
    event.drift_types.extend(TYPE_CODES[t] for t in result.types)  # type: ignore[misc]
    event.window_start.FromDatetime(window.start)
    event.window_end.FromDatetime(window.end)
    event.time.FromDatetime(datetime.now(UTC))
    return event
