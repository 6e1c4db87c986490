"""Detector fixtures: synthetic model bundles (manifest, reference, training data; no Keras needed) and events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mitiga_core.bundle import ModelManifest, Scaler, TrainingInfo
from mitiga_core.bus import InMemoryBus
from mitiga_core.events import Envelope, Topic, encode
from mitiga_core.jobs import JobLauncher, JobSpec, JobState
from mitiga_core.pb.mitiga.v1 import events_pb2 as pb
from mitiga_core.publisher import EventPublisher
from mitiga_core.state import InMemoryStateStore
from mitiga_core.store import FilesystemModelStore
from mitiga_detector.core import DetectorCore
from mitiga_detector.metrics import DetectorMetrics
from mitiga_detector.settings import DetectorSettings

FEATURES = ["a", "b", "c"]


def three_champions(root: Path) -> FilesystemModelStore:
    """A store whose model ``tab`` has versions 1, 2 and 3, each champion in turn (3 now)."""
    store = FilesystemModelStore(root)
    for seed in range(3):
        write_bundle(store, seed=seed)
    return store


def write_bundle(store: FilesystemModelStore, name: str = "tab", *, rows: int = 1000, seed: int = 0,
                 thresholds: dict[str, float] | None = None, noise: Any = None,
                 features: list[str] = FEATURES, units: str = "") -> str:
    """A regression model's bundle: reference ~ N(0, 1) per feature, target = a + b + c + noise, the model
    predicting a + b + c. Its validation rows (held out, with the model's predictions) and validation MAE/RMSE are
    recorded as training would. ``noise(x)`` gives the noise scale per row (0.1 by default)."""
    rng = np.random.default_rng(seed)

    def sample(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        x = rng.normal(size=(n, len(features))).astype(np.float32)
        pred = x.sum(axis=1, keepdims=True)
        scale = noise(x) if noise is not None else np.full((n, 1), 0.1)
        return x, pred, (pred + rng.normal(size=(n, 1)) * scale).astype(np.float32)

    x, _, y = sample(rows)
    x_val, pred_val, y_val = sample(rows // 2)
    error = y_val - pred_val
    info = TrainingInfo(metrics={"val_mae": float(np.abs(error).mean()),
                                 "val_rmse": float(np.sqrt((error**2).mean()))})
    manifest = ModelManifest(name=name, task="regression", features=features, outputs=["y"], training=info, units=units,
                             output_scaler=Scaler.fit("standard", y), thresholds=thresholds or {})

    def populate(folder: Path, version: str) -> None:
        np.save(folder / "reference.npy", x)
        np.savez(folder / "training.npz", x=x, y=y, dates=np.asarray(["2020-01-01"] * rows))
        np.savez(folder / "validation.npz", x=x_val, pred=pred_val, y=y_val)
        (folder / "manifest.json").write_text(manifest.model_copy(update={"version": version}).model_dump_json())

    version = store.write_version(name, populate)
    store.set_champion(name, version)
    return version


_clock = {"t": datetime(2024, 1, 1, tzinfo=UTC)}


def inference(x: np.ndarray, y: np.ndarray, *, name: str = "tab", version: str = "1", request_id: str = "",
              event_id: str | None = None, when: datetime | None = None, shadow: bool = False,
              features: list[str] = FEATURES) -> Envelope:
    _clock["t"] += timedelta(minutes=1)
    event = pb.InferenceEvent(event_id=event_id or f"e-{_clock['t'].timestamp()}-{request_id}", request_id=request_id,
                              model_name=name, model_version=version, feature_names=features,
                              inputs=pb.Matrix(shape=list(x.shape), data=np.asarray(x).reshape(-1).tolist()),
                              outputs=pb.Matrix(shape=list(y.shape), data=np.asarray(y).reshape(-1).tolist()),
                              shadow=shadow)
    event.time.FromDatetime(_clock["t"])
    if when is not None:
        event.data_time.FromDatetime(when)
    return encode(event, source="test", key=name)


def feedback(items: list[tuple[str, list[float]]], name: str = "tab") -> Envelope:
    _clock["t"] += timedelta(seconds=1)
    event = pb.FeedbackEvent(event_id=f"f-{_clock['t'].timestamp()}", model_name=name,
                             items=[pb.Feedback(request_id=r, ground_truth=g) for r, g in items])
    return encode(event, source="test", key=name)


class RecordingLauncher(JobLauncher):
    """Records launches. Stands in for the cluster in unit tests of the trigger's decisions."""

    def __init__(self) -> None:
        self.specs: dict[str, JobSpec] = {}

    def launch(self, spec: JobSpec) -> bool:
        if spec.name in self.specs:
            return False
        self.specs[spec.name] = spec
        return True

    def state(self, name: str) -> JobState:
        return JobState.RUNNING

    def wait(self, name: str, timeout_s: float) -> JobState:
        return JobState.RUNNING


class Harness:
    def __init__(self, root: Path, launcher: JobLauncher | None = None, **overrides: Any) -> None:
        self.store = FilesystemModelStore(root)
        self.bus = InMemoryBus()
        self.state = InMemoryStateStore()
        self.metrics = DetectorMetrics()
        self.launcher = launcher or RecordingLauncher()
        self.settings = DetectorSettings(**{"window_size": 50, "engine": "scipy", **overrides})
        self.publisher = EventPublisher(self.bus, source="detector", maxsize=10_000, registry=self.metrics.registry,
                                        linger_s=0)
        self.publisher.start()
        self.core = DetectorCore(self.settings, store=self.store, state=self.state, publisher=self.publisher,
                                 metrics=self.metrics, launcher=self.launcher)

    def drift_events(self) -> list[pb.DriftEvent]:
        self.publisher.stop()
        self.publisher.start()
        out = []
        for env in self.bus.messages(Topic.DRIFT):
            event = pb.DriftEvent()
            event.ParseFromString(env.payload)
            out.append(event)
        return out

    def value(self, name: str, **labels: str) -> float | None:
        return self.metrics.registry.get_sample_value(name, labels)


@pytest.fixture
def harness(tmp_path: Path):
    h = Harness(tmp_path)
    write_bundle(h.store)
    yield h
    h.publisher.stop()
