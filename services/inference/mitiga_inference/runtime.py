"""A loaded model version: the compiled model call, its batcher and its in-flight count."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import numpy as np

from mitiga_core.bundle import load_keras, read_manifest
from mitiga_core.bundle.io import MODEL_FILE
from mitiga_inference.batching import MicroBatcher

if TYPE_CHECKING:
    from pathlib import Path

    from mitiga_core.bundle import ModelManifest
    from mitiga_core.types import FloatArray


class CompiledModel:
    """The Keras model behind one ``tf.function`` with a fixed input signature (no retracing), plus the
    manifest's scalers: original units in, original units out."""

    def __init__(self, folder: Path) -> None:
        import tensorflow as tf

        self.manifest: ModelManifest = read_manifest(folder)
        model = load_keras(folder / MODEL_FILE)
        self._model_shape = tuple(int(d) for d in model.input_shape[1:])
        spec = tf.TensorSpec((None, *self._model_shape), tf.float32)
        self._fn = tf.function(lambda x: model(x, training=False), input_signature=[spec])
        self._tf = tf

    def __call__(self, x: FloatArray) -> FloatArray:
        """``x`` is (rows, window) for forecasts or (rows, features); returns (rows, outputs)."""
        m = self.manifest
        scaled = m.input_scaler.transform(x[..., None] if m.task == "forecast" else x)
        y = self._fn(self._tf.constant(scaled.reshape(len(x), *self._model_shape))).numpy()
        return m.output_scaler.inverse(np.asarray(y, np.float32).reshape(len(x), -1))

    def warm_up(self, max_rows: int) -> None:
        width = self.manifest.window if self.manifest.task == "forecast" else len(self.manifest.features)
        for rows in (1, max_rows):
            self(np.zeros((rows, width or 1), np.float32))


class LoadedModel:
    def __init__(self, compiled: CompiledModel, batcher: MicroBatcher) -> None:
        self.compiled = compiled
        self.manifest = compiled.manifest
        self.batcher = batcher
        self.inflight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def version(self) -> str:
        return self.manifest.version

    def acquire(self) -> None:
        self.inflight += 1
        self._idle.clear()

    def release(self) -> None:
        self.inflight -= 1
        if self.inflight == 0:
            self._idle.set()

    async def drain_and_close(self) -> None:
        """Wait for every request holding this version, then stop its batcher."""
        await self._idle.wait()
        await self.batcher.close()
