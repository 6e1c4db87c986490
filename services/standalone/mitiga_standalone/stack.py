"""The standalone stack: inference and detector in one process on the embedded adapters (no Kafka, Redis or
cluster). It is the composition root: the one place that imports several services."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from mitiga_core.bus import InMemoryBus
from mitiga_core.state import InMemoryStateStore
from mitiga_core.store import FilesystemModelStore
from mitiga_detector.app import create_app as create_detector
from mitiga_detector.settings import DetectorSettings
from mitiga_inference.app import create_app as create_inference
from mitiga_inference.settings import InferenceSettings
from mitiga_standalone.launcher import InProcessLauncher
from mitiga_standalone.server import BackgroundServer

if TYPE_CHECKING:
    from pathlib import Path

    from mitiga_detector.core import DetectorCore


class StandaloneStack:
    """``inference``, ``detector`` and ``retrainer`` override their settings; retraining jobs run in this
    process."""

    def __init__(self, store_root: Path, *, detector: dict[str, Any] | None = None,
                 retrainer: dict[str, Any] | None = None, inference: dict[str, Any] | None = None,
                 inference_port: int = 0, detector_port: int = 0) -> None:
        self.bus = InMemoryBus()
        self.state = InMemoryStateStore()
        self.store = FilesystemModelStore(store_root)
        # the standalone stack replays history (make demo, the experiments): every request's data_time is honoured
        inference_settings = InferenceSettings(model_store_path=store_root, log_level="WARNING",
                                               **{"data_time_from": "anyone", **(inference or {})})
        detector_settings = DetectorSettings(model_store_path=store_root, log_level="WARNING", **(detector or {}))
        self.launcher = InProcessLauncher(store=self.store, state=self.state, bus=self.bus, defaults=retrainer)
        inference_app = create_inference(inference_settings, bus=self.bus, store=self.store, state=self.state)
        self.inference = BackgroundServer(inference_app, port=inference_port)
        detector_app = create_detector(detector_settings, bus=self.bus, store=self.store, state=self.state,
                                       launcher=self.launcher)
        self.detector_core: DetectorCore = detector_app.state.core
        self.detector = BackgroundServer(detector_app, port=detector_port)

    def start(self) -> None:
        self.inference.start()
        self.detector.start()

    def stop(self) -> None:
        self.inference.stop()
        self.detector.stop()

    def processed(self, kind: str) -> float:
        """How many events of ``kind`` (``InferenceEvent``, ``FeedbackEvent``) the detector has handled."""
        value = self.detector_core.metrics.registry.get_sample_value("mitiga_detector_events_total", {"type": kind})
        return value or 0.0

    def wait_processed(self, kind: str, count: float, timeout_s: float = 300.0) -> None:
        deadline = time.monotonic() + timeout_s
        while self.processed(kind) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the detector did not process {count:g} {kind}s in {timeout_s:g} s")
            time.sleep(0.01)
